"""`tfseg demo`: a local web page that segments a photo you drop on it.

ARCHITECTURE. `logic` holds everything the page shows (the one loader of a
run or an exported file, reading an upload safely, the painted mask, the
class shares) without Gradio, so it is tested without it; `page` lays it
out in Gradio and serves it (`page.serve`). `page` imports `logic`, never
the reverse.
"""
