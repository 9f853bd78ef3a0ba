"""App-layer helpers shared by the Streamlit pages: caching wrappers and widgets.

Everything here may import streamlit; the real work stays in ``tlcore``.
"""
