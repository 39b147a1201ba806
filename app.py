"""convcov: see, use and test the covariance structure of convolutional filters.

Entry point: the app's navigation over its pages (convcov_app.navigation: Home, then every page in
convcov_app/pages/), with the bundled example network in the run store for the pages that read one.
"""

import streamlit as st

from convcov_app.navigation import app_pages
from convcov_app.store import add_bundled_example

add_bundled_example()
st.navigation(app_pages()).run()
