"""corpusmap's Streamlit entry point."""

import streamlit as st

st.set_page_config(page_title="corpusmap", layout="wide")
st.title("corpusmap")
st.write("Upload a corpus to cluster it.")
