"""The web demo: `python -m estrnn_jax.demo [--checkpoint CKPT] [--port 7860] [--share]` (Gradio).

  weights.py   which model the page uses (a --checkpoint, the default run's workdir, or how to get one)
  limits.py    what an upload may be (size, duration, frame size), stated in the page and enforced
  jobs.py      one request: a clip in; the deblurred video, a side-by-side video, frames and PSNR out
  examples.py  the built-in examples: synthetic test clips with their sharp frames
  page.py      the Gradio page and its event handlers
  __main__.py  the command line

Everything but page.py and __main__.py works without Gradio.
"""
