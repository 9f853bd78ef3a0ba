"""App-layer helpers shared by the Streamlit pages: caching wrappers and widgets.

Everything here may import streamlit; the real work stays in ``tlcore``, and the
pages (``streamlit_app.py``, ``pages/``) read widgets, call these helpers and
``tlcore``, and draw. Caching (``st.cache_data``, ``st.cache_resource``) lives here,
never in ``tlcore``.

- ``common``            the page list and sidebar, the workspace, ``md_escape``,
                        ``show_error`` (every page)
- ``data``              cached dataset loaders, thumbnails and the shared model
                        loader (Home, Datasets, Predict, Results)
- ``augment_widgets``   catalogue-parameter widgets and cached previews (Augmentations)
- ``search_widgets``    one poll of a study, spec uploads, the curves plot (Search)
- ``scout_widgets``     the Scout step: run a scout, its per-depth scores and ranking,
                        narrow or seed the new study (Search); scout vs the trials (Results)
- ``results_widgets``   trial keys, cached study views, evaluation, Grad-CAM,
                        export archives (Results)
"""
