"""corpusmap's Streamlit app: the frame. Page config, the team-mode gate, navigation and the
shared sidebar; each screen is its own script under pages/."""

import logging

import streamlit as st

from ui import auth, frame, resources, widgets
from ui.errors import user_errors

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
st.set_page_config(page_title="corpusmap", page_icon=":material/scatter_plot:", layout="wide")

# Team mode: refused at start-up if unsafe; then nothing renders until someone is signed in.
team = auth.start()
auth.gate(team)
navigation = st.navigation(frame.pages(team.team))
with user_errors():
    widgets.follow_links(resources.store())
frame.resume()
resources.warm_up()
with user_errors("cannot open the database"):
    widgets.sidebar(resources.store())
navigation.run()
