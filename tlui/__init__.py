"""App-layer helpers shared by the Streamlit pages: caching wrappers and widgets.

Everything here may import streamlit; the real work stays in ``tlcore``, and the
pages (``pages/``, run in the frame ``streamlit_app.py`` draws) read widgets, call
these helpers and ``tlcore``, and draw. Caching (``st.cache_data``, ``st.cache_resource``) lives here,
never in ``tlcore``.

- ``common``            the page list (``PAGES``, the one declaration) and the frame
                        (``st.navigation``, sidebar), the workspace, ``md_escape``,
                        ``show_error`` (every page)
- ``fmt``               numbers and seconds, Plotly-label escaping (every page)
- ``place``             keeping the user's place: one-shot banners in fixed slots (``flash``,
                        ``banners``), expanders and tabs that keep their state (every page)
- ``fields``            number fields bounded by the page, not the browser, and the
                        out-of-range check a form's action runs first (Search, Train)
- ``data``              cached dataset loaders, thumbnails and the shared model
                        loader (Home, Datasets, Predict, Results)
- ``datasets_widgets``  session state, button actions and charts (Datasets)
- ``audit_widgets``     the Audit tab: run an audit in the background, its flags as thumbnails,
                        keep / relabel / exclude and undo, the decisions as CSV (Datasets)
- ``augment_widgets``   catalogue-parameter widgets and cached previews (Augmentations)
- ``augment_editor``    the pipeline editor's session state and callbacks (Augmentations)
- ``train_widgets``     the new-run form from TrainSpec's defaults, the job list, one job's
                        curves, epochs, status and result (Train)
- ``search_widgets``    one poll of a study, spec uploads, its tables, texts and plots (Search)
- ``search_form``       the New-study form: widgets from StudySpec's defaults, create and
                        start a study (Search)
- ``search_state``      the selected study, messages and button callbacks (Search)
- ``scout_widgets``     the Scout step: run a scout, its per-depth scores and ranking,
                        narrow or seed the new study (Search); scout vs the trials (Results)
- ``results_widgets``   trial labels and tables, cached study views, evaluation, Grad-CAM,
                        export archives (Results)
- ``evaluate_widgets``  a trial's test reports, its evaluation again with top losses,
                        downloads and export (Results)
- ``predict_widgets``   the model picker over every model, the model's card, batch
                        prediction with its progress and table, the TTA check (Predict)
- ``export_widgets``    the export section: formats, the checks table, failed checks in red
                        (Results)
- ``calibration_widgets`` temperature, ECE before and after, the reliability diagram (Results)
- ``run_widgets``       single trained runs opened like trials: table, curves, evaluation,
                        export (Results' "Trained runs")
"""
