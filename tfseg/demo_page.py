"""The page of `tfseg demo`, in Gradio (`pip install "tfseg[demo]"`).

Two tabs. "Segment": drop, paste or pick a photo (or click an example pet),
and see the photo with the mask painted over it, the mask alone and the
share of each class, with an opacity slider that repaints without running
the model again. "Model": the run's configuration, test scores and
pictures. What the page shows is computed in `tfseg.demo`; this module only
lays it out and wires the events.

The photo's event skips Gradio's preprocessing (which would open the file
first) and hands the uploaded file's path to `tfseg.demo.read_photo`, so a
file that is not an image, a damaged one or one too large gets the page's
own message, and the server goes on serving.
"""

from tfseg import demo as demos
from tfseg import visualize

# Pictures the page shows: lossless, and no "share" button (it would offer
# to upload them).
SHOWN = {"format": "png", "buttons": ["download", "fullscreen"]}


def build_page(demo):
    """The `gr.Blocks` page of a `tfseg.demo.DemoModel`."""
    import gradio as gr  # here, so the module imports without the extra

    names = demo.class_names

    def on_photo(upload, opacity):
        # Unprocessed: the upload's file data as a dict, or None once cleared.
        # -> overlay, mask, shares, status, the segmentation (for the slider)
        if upload is None:
            return None, None, "", "", None
        try:
            segmentation = demos.segment_photo(demo, upload["path"])
        except ValueError as error:
            return None, None, "", f"**Error:** {error}", None
        painted, mask = demos.render(segmentation, names, opacity)
        table = demos.share_table(segmentation, names)
        return painted, mask, table, demos.describe(segmentation), segmentation

    def on_opacity(segmentation, opacity):
        if segmentation is None:
            return gr.skip()
        return demos.render(segmentation, names, opacity)[0]

    with gr.Blocks(title=f"tfseg demo: {demo.title}", analytics_enabled=False) as page:
        gr.Markdown(f"# tfseg demo: {demo.title}")
        with gr.Tab("Segment"):
            with gr.Row(equal_height=True):
                photo = gr.Image(
                    type="filepath",
                    label="Your pet photo: drop, paste or click to pick",
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
                    demo.examples, inputs=photo, label="Pets of the run's test split"
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
