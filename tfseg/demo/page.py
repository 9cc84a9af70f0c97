"""The page of `tfseg demo`, in Gradio (`pip install "tfseg[demo]"`).

Two tabs. "Segment": drop, paste or pick a photo (or click an example of
the run's test split), and see the photo with the mask painted over it in
the run's class colours, the mask alone and the share of each class (the
run's class names), with an opacity slider that repaints without running
the model again. "Model": the run's configuration, test scores and
pictures. What the page shows is computed in `tfseg.demo.logic`; this module only
lays it out and wires the events.

The photo's event skips Gradio's preprocessing (which would open the file
first) and hands the uploaded file's path to `tfseg.demo.logic.read_photo`, so a
file that is not an image, a damaged one or one too large gets the page's
own message, and the server goes on serving.
"""

import os

import numpy as np

from tfseg import visualize
from tfseg.config import DEMO_HOST
from tfseg.config import DEMO_PORT
from tfseg.demo import logic

# Pictures the page shows: lossless, and no "share" button (it would offer
# to upload them).
SHOWN = {"format": "png", "buttons": ["download", "fullscreen"]}


def build_page(demo):
    """The `gr.Blocks` page of a `tfseg.demo.logic.DemoModel`."""
    import gradio as gr  # here, so the module imports without the extra

    names = demo.class_names
    drawing = (demo.colors, demo.unpainted)  # the run's colours, every picture

    def on_photo(upload, opacity):
        # Unprocessed: the upload's file data as a dict, or None once cleared.
        # -> overlay, mask, shares, status, the segmentation (for the slider)
        if upload is None:
            return None, None, "", "", None
        try:
            segmentation = logic.segment_photo(demo, upload["path"])
        except ValueError as error:
            return None, None, "", f"**Error:** {error}", None
        painted, mask = logic.render(segmentation, names, opacity, *drawing)
        table = logic.share_table(segmentation, names)
        return painted, mask, table, logic.describe(segmentation), segmentation

    def on_opacity(segmentation, opacity):
        if segmentation is None:
            return gr.skip()
        return logic.render(segmentation, names, opacity, *drawing)[0]

    with gr.Blocks(title=f"tfseg demo: {demo.title}", analytics_enabled=False) as page:
        gr.Markdown(f"# tfseg demo: {demo.title}")
        with gr.Tab("Segment"):
            with gr.Row(equal_height=True):
                photo = gr.Image(
                    type="filepath",
                    label="Your photo: drop, paste or click to pick",
                    sources=["upload", "clipboard"],
                    elem_id="photo",
                )
                overlay = gr.Image(label="Photo and mask", elem_id="overlay", **SHOWN)
                mask = gr.Image(label="Mask", elem_id="mask", **SHOWN)
            opacity = gr.Slider(
                0, 1, value=visualize.OPACITY, step=0.05, label="Mask opacity"
            )
            status = gr.Markdown(elem_id="status")
            shares = gr.Markdown(elem_id="shares")
            if demo.examples:
                gr.Examples(
                    demo.examples, inputs=photo, label="Photos of the run's test split"
                )
        with gr.Tab("Model"):
            rows = [f"| {key} | {value} |" for key, value in demo.details.items()]
            gr.Markdown("\n".join(["| setting | value |", "| --- | --- |", *rows]))
            if demo.report:
                gr.Markdown(demo.report, elem_id="report")
            for caption, path in demo.figures.items():
                gr.Image(path, label=caption, interactive=False, **SHOWN)
        segmented = gr.State()
        photo.change(
            on_photo,
            inputs=[photo, opacity],
            outputs=[overlay, mask, shares, status, segmented],
            api_name="segment",
            preprocess=False,
        )
        opacity.change(
            on_opacity,
            inputs=[segmented, opacity],
            outputs=overlay,
            api_visibility="private",
        )
    return page


def serve(path, host=DEMO_HOST, port=DEMO_PORT):
    """Loads the model once, warms it with one forward pass, and serves the
    page at `http://host:port` until Ctrl-C.

    Raises:
        RunError: for a path `load_for_demo` cannot read.
        ValueError: for a port outside 1..65535.
        RuntimeError: where Gradio is not installed.
        OSError: where the port is taken or the address cannot be used.
    """
    if not 1 <= port <= 65535:
        raise ValueError(f"--port must be 1 to 65535; received {port}.")
    logic.check_source(path)
    logic.require_gradio()
    os.environ.update(logic.OFFLINE)  # before Gradio is imported
    from tfseg.inference import segment  # Keras

    demo = logic.load_for_demo(path)
    # The first call of a model sets up its graph: done here, not for the
    # first visitor.
    segment(demo.model, np.zeros((64, 64, 3), np.uint8))

    page = build_page(demo)
    try:
        page.launch(
            server_name=host,
            server_port=port,
            share=False,
            quiet=True,
            prevent_thread_lock=True,
            max_file_size=logic.MAX_UPLOAD,
            footer_links=[],
            run_history=False,
            enable_monitoring=False,
        )
    except OSError as error:  # Gradio's text names its own launch() arguments
        raise OSError(
            f"Cannot serve on {host}:{port}: the port is in use, or {host} is not "
            "an address of this machine. Pass another --port (or --host)."
        ) from error
    print(
        f"tfseg demo of {demo.title}: http://{host}:{port} (Ctrl-C stops it)",
        flush=True,
    )
    try:
        page.block_thread()
    finally:
        page.close()
