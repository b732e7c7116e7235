"""corpusmap's Streamlit app: the frame. Page config, navigation and the shared sidebar; each
screen is its own script under pages/."""

import logging

import streamlit as st

from ui import frame, resources, widgets
from ui.errors import user_errors

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
st.set_page_config(page_title="corpusmap", page_icon=":material/scatter_plot:", layout="wide")

navigation = st.navigation(
    {
        "Data": [
            st.Page(
                widgets.PAGES["corpus"], title="Corpus", icon=":material/upload_file:", default=True
            ),
            st.Page(widgets.PAGES["run"], title="Run", icon=":material/play_arrow:"),
        ],
        "Results": [
            st.Page(widgets.PAGES["explore"], title="Explore", icon=":material/scatter_plot:"),
            st.Page(widgets.PAGES["lens"], title="Context", icon=":material/filter_alt:"),
            st.Page(widgets.PAGES["edit"], title="Edit", icon=":material/edit:"),
            st.Page(widgets.PAGES["export"], title="Export", icon=":material/download:"),
        ],
        "Runs": [
            st.Page(widgets.PAGES["history"], title="History", icon=":material/history:"),
            st.Page(widgets.PAGES["evaluation"], title="Evaluation", icon=":material/fact_check:"),
        ],
    }
)
frame.resume()
resources.warm_up()
with user_errors("cannot open the database"):
    widgets.sidebar(resources.store())
navigation.run()
