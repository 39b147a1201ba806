"""The Streamlit side of convcov: the pages (pages/, one thin script each), their presenters (what a page
computes and says, without streamlit), page navigation, shared widgets and messages, uploads, the run
store as the pages reach it, background jobs, and the wording of labels and presets.

convcov_core never imports streamlit; everything that does lives here (installed with the `app`
extra), and app.py imports it.
"""
