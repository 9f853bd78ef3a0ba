"""The Datasets page's Audit tab: run an audit in the background, review its flags, decide about them.

``audit_tab`` draws the whole tab for one dataset, top to bottom:

- its banners (the ``SLOT`` of ``tlui.place``: what a button did, an audit that finished);
- *Run an audit*: the settings (image size, the splits whose labels are audited, folds; the
  rest are ``BASE_SPEC``'s) and a button that starts ``tlcore.audit.launch_audit``; while the
  job runs, its progress in a fragment that rereads the job every ``REFRESH_S`` seconds; a
  job that failed after the newest audit shows its message (what to do included) and the end
  of its log;
- the audit shown (the newest, or one picked): its settings, counts, notes, decisions about
  files that are gone (reported, never fatal), then four tabs: *Labels* (suspected label
  errors as thumbnails with the given and the suggested class and the score, most suspicious
  first, and the classes confused as a whole), *Near-duplicates* (groups side by side with
  their similarity, a leakage marker when they straddle splits, a threshold the user moves
  over the saved pairs), *Quality* (blurry, dark, bright, uniform: the measured value and
  the threshold) and *Decisions* (the override manifest: undo, CSV export and import).

Every image offers *Keep*, *Relabel as …* and *Exclude* (``tlcore.datasets.add_overrides``:
the image files are never touched; the split, training, search and evaluation read the
manifest), or, once decided, what was decided and *Undo*. The lists are filtered by kind and
class and drawn ``PER_PAGE`` at a time, so a large audit stays fast. A saved audit is read
once (``saved_audit``, cached: it never changes; the key holds the dataset's folder, where its images'
paths are joined to); the decisions are read on every run.

Session keys: ``aud_*``, per dataset (``aud_lab_cls::<name>``, ...); ``RUN_OPEN`` and ``TAB``
keep the run expander and the open list (``tlui.place``). The settings, the audit picked, the filters,
the threshold and each image's "Relabel as" are drawn with ``persist_state=place.KEPT``, so they are still
there after a visit to another page; "Replace the current decisions" is asked again. User text (class and file names) is
Markdown-escaped.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from tlcore import audit as ta
from tlcore import datasets as tds
from tlcore._usertext import decode_text
from tlcore.background import log_tail
from tlcore.datasets import Override
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from tlui import data, fields, place
from tlui import fmt as tf
from tlui.common import md_escape, show_error

__all__ = [
    "SLOT",
    "TAB",
    "RUN_OPEN",
    "BASE_SPEC",
    "PER_PAGE",
    "GROUPS_PER_PAGE",
    "THUMB_PX",
    "saved_audit",
    "duplicate_groups",
    "decision_text",
    "audit_tab",
    "problems_near_duplicates",
]

SLOT = "audit"  # the tab's banners (tlui.place)
TAB = "aud_tab"  # the open list: Labels, Near-duplicates, Quality, Decisions
RUN_OPEN = "aud_run_open::{}"  # the Run expander of a dataset
BASE_SPEC = ta.AuditSpec()  # what the form does not set (backbone, weights, thresholds)
REFRESH_S = 2  # seconds between rereads of a running job
PER_PAGE = 12  # images of a list drawn at a time
COLUMNS = 3  # images side by side in a list
GROUPS_PER_PAGE = 6  # near-duplicate groups drawn at a time
MEMBERS_SHOWN = 6  # images of a group drawn (COLUMNS a row); the others are counted
THUMB_PX = 128
LOG_LINES = 20
CONFUSED_SHOWN = 5
_FORM = "aud_form_"  # the prefix of the form's number fields (tlui.fields)
_FULL = "aud_full_run"  # True while the whole page draws the progress fragment
_FINAL = ("finished", "failed")
_SPLITS = ("train", "val", "test")
_SCORES = {"self_confidence": "confidence in its label", "normalized_margin": "normalized margin"}
DUP_KINDS = {"leakage": "Leakage (across splits)", "cross_class": "Different classes", "within_class": "Same class"}
_BADGES = {"leakage": ":red-badge[Leakage]", "cross_class": ":orange-badge[Different classes]",
           "within_class": ":gray-badge[Same class]"}


# ------------------------------------------------------------------ reading
def saved_audit(ws_root: str, name: str, audit_id: str) -> ta.AuditResult:
    """``tlcore.audit.load_audit``, once per audit and dataset folder (a saved audit never changes; its
    images' ``path`` is where the dataset is registered now, so a dataset registered again at another
    folder reads the audit again). Its ``decision`` columns are those of the first read: the page reads
    the decisions itself, on every run."""
    return _read_audit(ws_root, name, audit_id, Workspace(ws_root).get_dataset(name).path)


@st.cache_data(show_spinner="Reading the audit…", max_entries=8)
def _read_audit(ws_root: str, name: str, audit_id: str, dataset_folder: str) -> ta.AuditResult:
    # dataset_folder: only the cache's key (load_audit reads the registry itself)
    return ta.load_audit(Workspace(ws_root), name, audit_id)


def decision_text(d: Override) -> str:
    """What a decision did, as a card says it: "Kept", "Relabelled to Shirt", "Excluded" (Markdown)."""
    if d.action == "relabel":
        return f"Relabelled to {md_escape(d.label)}"
    return {"keep": "Kept (reviewed)", "exclude": "Excluded"}.get(d.action, md_escape(d.action))


def duplicate_groups(pairs: pd.DataFrame, images: pd.DataFrame) -> list[dict[str, Any]]:
    """The near-duplicate ``pairs`` (``AuditResult.near_duplicates``) joined into groups.

    Args:
        pairs: the pairs at the threshold shown.
        images: one row per image with ``relpath``, ``path``, ``label``, ``split`` (the audit's
            ``quality`` table holds every image).

    Returns:
        ``[{"members": DataFrame(relpath, path, label, split), "kinds", "kind", "low", "high", "resolved"}]``:
        ``kinds`` holds "leakage" when the members lie in more than one split, and "cross_class"
        when their labels differ, else "within_class"; ``kind`` is the first of them; ``low`` /
        ``high`` the pairs' pixel similarity; ``resolved`` whether the split now keeps a leaking
        group on one side. Leakage first, then different classes, each by similarity, highest first.
    """
    if pairs.empty:
        return []
    codes, uniques = pd.factorize(pd.concat([pairs["relpath_a"], pairs["relpath_b"]], ignore_index=True))
    n = len(pairs)
    ij = pd.DataFrame({"i": codes[:n], "j": codes[n:]})
    group = ta.group_pairs(len(uniques), ij)
    info = images.drop_duplicates("relpath").set_index("relpath")
    pair_group = group[codes[:n]]
    order = {"leakage": 0, "cross_class": 1, "within_class": 2}
    out = []
    for g in np.unique(group):
        rels = sorted(str(r) for r in uniques[group == g])
        members = info.reindex(rels)[["path", "label", "split"]].fillna("").astype(str).reset_index()
        mine = pairs[pair_group == g]
        kinds = (["leakage"] if members["split"].nunique() > 1 else []) + (
            ["cross_class"] if members["label"].nunique() > 1 else ["within_class"])
        kind = kinds[0]
        resolved = kind == "leakage" and "leakage_after" in mine and not bool(
            mine.loc[mine["kind"] == "leakage", "leakage_after"].any())
        out.append({"members": members, "kinds": kinds, "kind": kind, "low": float(mine["similarity"].min()),
                    "high": float(mine["similarity"].max()), "resolved": resolved})
    return sorted(out, key=lambda d: (order[d["kind"]], -d["high"], d["members"]["relpath"].iloc[0]))


def _job_log(ws: Workspace, name: str, job_id: str) -> Path:
    # The job folder's layout is tlcore.audit._jobs' (its docstring); audit_status does not name the log.
    return ws.dataset_dir(name, create=False) / "audits" / "jobs" / job_id / "log.txt"


def _created_ts(summary: dict[str, Any]) -> float:
    try:
        return _dt.datetime.fromisoformat(str(summary.get("created"))).timestamp()
    except ValueError:
        return 0.0


# ------------------------------------------------------------------ state
def _keep_valid(key: str, options: Sequence[str]) -> None:
    """A multiselect's chosen values that are still options (a new audit may lack a class or kind)."""
    ss = st.session_state
    ss[key] = [v for v in ss.get(key, []) if v in options]


def _init_form(name: str) -> None:
    ss = st.session_state
    ss.setdefault(f"{_FORM}size::{name}", int(BASE_SPEC.image_size))
    ss.setdefault(f"{_FORM}folds::{name}", int(BASE_SPEC.folds))
    ss.setdefault(f"aud_splits::{name}", list(BASE_SPEC.splits))
    ss.setdefault(f"aud_hide::{name}", False)


# ------------------------------------------------------------------ callbacks
def _on_run(ws: Workspace, name: str) -> None:
    ss = st.session_state
    problems = fields.out_of_range(_FORM)
    if problems:
        place.flash("error", "Nothing was started. Fix the fields first: " + " ".join(problems), slot=SLOT)
        return
    splits = [s for s in _SPLITS if s in ss.get(f"aud_splits::{name}", [])]
    try:
        spec = dataclasses.replace(BASE_SPEC, image_size=int(ss[f"{_FORM}size::{name}"]),
                                   folds=int(ss[f"{_FORM}folds::{name}"]), splits=splits)
        job = ta.launch_audit(ws, name, spec)
    except TLCoreError as exc:
        place.flash("error", md_escape(str(exc)), slot=SLOT)
        return
    ss[f"aud_watch::{name}"] = job
    place.flash("info", f"Started the audit of {md_escape(name)} in the background (job {md_escape(job)}). You can "
                "keep working; its results show here when it is done.", slot=SLOT)


def _on_decide(ws: Workspace, name: str, relpath: str, action: str, flag: str, label_key: str = "") -> None:
    label = str(st.session_state.get(label_key, "")) if action == "relabel" else ""
    try:
        tds.add_overrides(ws, name, [relpath], action, label=label, flag=flag)
    except TLCoreError as exc:
        place.flash("error", md_escape(str(exc)), slot=SLOT)
        return
    what = {
        "keep": "Kept {}: marked as reviewed, nothing changes for training.",
        "relabel": "Relabelled {} as " + md_escape(label) + ": the split, training, search and evaluation use the "
                   "new label (the file is not moved).",
        "exclude": "Excluded {}: the split, training, search and evaluation leave it out (the file is not touched).",
    }[action]
    place.flash("success", what.format(md_escape(relpath)), slot=SLOT)


def _on_exclude_rest(ws: Workspace, name: str, relpaths: list[str]) -> None:
    try:
        tds.add_overrides(ws, name, relpaths, "exclude", flag="near_duplicate")
    except TLCoreError as exc:
        place.flash("error", md_escape(str(exc)), slot=SLOT)
        return
    copies = "1 copy" if len(relpaths) == 1 else f"{len(relpaths):,} copies"
    place.flash("success", f"Excluded {copies}: " + ", ".join(md_escape(r) for r in relpaths) + " (the files are not "
                "touched).", slot=SLOT)


def _on_undo(ws: Workspace, name: str, relpath: str) -> None:
    try:
        [removed] = tds.undo_overrides(ws, name, relpaths=[relpath])
        earlier = tds.current_overrides(tds.load_overrides(ws, name)).get(relpath)
    except TLCoreError as exc:
        place.flash("error", md_escape(str(exc)), slot=SLOT)
        return
    text = f"Undid “{decision_text(removed)}” for {md_escape(relpath)}"
    place.flash("success", text + (f"; its earlier decision counts again: {decision_text(earlier)}." if earlier
                                   else "; it is as it was before."), slot=SLOT)


def _on_undo_last(ws: Workspace, name: str, shown: tuple[int, str] | None = None) -> None:
    """Undo the most recent decision: the one the page showed as last (``shown``: its number and time), so
    that a second click, or a click on another tab, never undoes one more decision than the user saw."""
    try:
        if shown is not None:
            decisions = tds.load_overrides(ws, name)
            last = max(decisions, key=lambda d: d.seq) if decisions else None
            if last is None or (last.seq, last.at) != tuple(shown):
                place.flash("info", f"Decision {shown[0]} was already undone (by an earlier click, or on another "
                            "tab); nothing else was undone. The list below is the one now saved: click again to "
                            "undo its last decision.", slot=SLOT)
                return
        [removed] = tds.undo_overrides(ws, name, last=True)
        earlier = tds.current_overrides(tds.load_overrides(ws, name)).get(removed.relpath)
    except TLCoreError as exc:
        place.flash("error", md_escape(str(exc)), slot=SLOT)
        return
    text = f"Undid decision {removed.seq} ({decision_text(removed)}: {md_escape(removed.relpath)})"
    place.flash("success", text + (f"; its earlier decision counts again: {decision_text(earlier)}." if earlier
                                   else "; the image is as it was before."), slot=SLOT)


def _on_forget(ws: Workspace, name: str, seqs: list[int]) -> None:
    try:
        removed = tds.undo_overrides(ws, name, seqs=seqs)
    except TLCoreError as exc:
        place.flash("error", md_escape(str(exc)), slot=SLOT)
        return
    place.flash("success", f"Forgot {len(removed):,} decisions about files that are gone.", slot=SLOT)


def _on_import(ws: Workspace, name: str) -> None:
    ss = st.session_state
    upload = place.upload_of(f"aud_import::{name}")
    if upload is None:
        place.flash("error", "Choose a CSV file of decisions first.", slot=SLOT)
        return
    try:
        text = decode_text(upload.getvalue(), "the file", "Export the decisions again and import that file.")
        new = tds.import_overrides_csv(ws, name, text, replace=bool(ss.get(f"aud_import_replace::{name}")))
    except TLCoreError as exc:
        place.flash("error", md_escape(str(exc)), slot=SLOT)
        return
    place.flash("success", f"Imported {len(new):,} decision{'' if len(new) == 1 else 's'} from {md_escape(upload.name)}.", slot=SLOT)


def _show_confused(name: str, a: str, b: str) -> None:
    st.session_state[f"aud_lab_cls::{name}"] = [a, b]
    st.session_state[f"aud_lab_page::{name}"] = 1


# ------------------------------------------------------------------ one image
@dataclasses.dataclass(frozen=True)
class _Ctx:
    """What every card needs: where to write, the classes to relabel to, the decisions now."""

    ws: Workspace
    name: str
    classes: list[str]
    decisions: dict[str, Override]

    def decided(self, relpaths: pd.Series) -> np.ndarray:
        return relpaths.astype(str).isin(list(self.decisions)).to_numpy()


def _thumb(arr: np.ndarray | None, caption: str) -> None:
    if arr is None:
        st.caption(f"{md_escape(caption)}: cannot be read (changed or gone since the scan; rescan the dataset).")
    else:
        st.image(arr, caption=md_escape(caption), width=THUMB_PX)


def _actions(ctx: _Ctx, section: str, relpath: str, label: str, flag: str, suggested: str = "") -> None:
    """Keep / Relabel as … / Exclude for an image without a decision; what was decided and Undo otherwise."""
    key = f"{section}::{ctx.name}::{relpath}"
    d = ctx.decisions.get(relpath)
    if d is not None:
        st.markdown(f"**{decision_text(d)}**")
        st.button("Undo", key=f"aud_undo::{key}", on_click=_on_undo, args=(ctx.ws, ctx.name, relpath),
                  icon=":material/undo:")
        return
    others = [c for c in ctx.classes if c != label]
    if others:
        st.selectbox("Relabel as", others, index=others.index(suggested) if suggested in others else 0,
                     key=f"aud_to::{key}", persist_state=place.KEPT)
    c1, c2, c3 = st.columns(3, gap="small")
    c1.button("Keep", key=f"aud_keep::{key}", on_click=_on_decide, args=(ctx.ws, ctx.name, relpath, "keep", flag),
              help="The label is right: mark the image as reviewed.")
    c2.button("Relabel", key=f"aud_relabel::{key}", disabled=not others, on_click=_on_decide,
              args=(ctx.ws, ctx.name, relpath, "relabel", flag, f"aud_to::{key}"),
              help="Train on it with the class chosen above (the file stays where it is).")
    c3.button("Exclude", key=f"aud_exclude::{key}", on_click=_on_decide,
              args=(ctx.ws, ctx.name, relpath, "exclude", flag),
              help="Leave it out of the split, training, search and evaluation (the file is not touched).")


def _grid(ctx: _Ctx, section: str, rows: pd.DataFrame, describe, flag_of) -> None:
    """Cards of ``rows`` (``relpath``, ``path``, ``label``), ``COLUMNS`` a row: thumbnail, ``describe(row)``
    (Markdown), the actions."""
    arrays = data.thumbs(rows["path"].astype(str).tolist(), THUMB_PX)
    records = rows.to_dict("records")
    for start in range(0, len(records), COLUMNS):
        cols = st.columns(COLUMNS)
        for k, (col, row, arr) in enumerate(zip(cols, records[start:start + COLUMNS], arrays[start:start + COLUMNS])):
            with col.container(border=True, key=f"aud_card_{section}_{start + k}"):
                _thumb(arr, str(row["relpath"]))
                st.markdown(describe(row))
                _actions(ctx, section, str(row["relpath"]), str(row["label"]), flag_of(row),
                         str(row.get("suggested", "")))


# ------------------------------------------------------------------ the lists
def _labels_list(ctx: _Ctx, result: ta.AuditResult) -> None:
    name = ctx.name
    issues = result.label_issues()
    lab = result.summary["labels"]
    score = _SCORES.get(str(lab.get("ranking")), "score")
    if not len(issues):
        st.success(f"No suspected label errors among the {lab['audited']:,} images audited.")
        return
    confused = result.confused_pairs(min_count=2)[:CONFUSED_SHOWN]
    if confused:
        st.markdown("**Classes confused as a whole**")
        for i, p in enumerate(confused):
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            c1.markdown(md_escape(p["text"]))
            c2.button("Show these", key=f"aud_confused::{name}::{i}", on_click=_show_confused,
                      args=(name, str(p["a"]), str(p["b"])), help="Show the flagged images of these two classes.")
    key = f"aud_lab_cls::{name}"
    _keep_valid(key, result.class_names)
    chosen = st.multiselect("Classes", result.class_names, key=key, placeholder="All classes",
                            persist_state=place.KEPT, help="The images whose given or suggested class is one of these.")
    view = issues
    if chosen:
        view = view[view["label"].isin(chosen) | view["suggested"].isin(chosen)]
    if st.session_state.get(f"aud_hide::{name}"):
        view = view[~ctx.decided(view["relpath"])]
    st.caption(f"{len(view):,} of {len(issues):,} suspected label errors shown, most suspicious first (lowest "
               f"{score}). Confident learning estimates {lab.get('estimated_errors', 0):,} label errors in all.")
    start = fields.page_start(len(view), PER_PAGE, f"aud_lab_page::{name}")
    rows = view.iloc[start:start + PER_PAGE]

    def describe(r: dict) -> str:
        return (f"given **{md_escape(r['label'])}** → suggested **{md_escape(r['suggested'])}**  \n"
                f"{score} {float(r['score']):.3f} · rank {int(r['rank']):,} · {r['split']}")

    _grid(ctx, "lab", rows, describe, lambda r: "label_issue")


def _group_card(ctx: _Ctx | None, g: dict[str, Any], index: int, *, prefix: str = "aud") -> None:
    """One near-duplicate group, its images side by side; with their Keep / Relabel / Exclude
    buttons when ``ctx`` says where to write (the Problems tab shows the groups without them)."""
    members = g["members"]
    sim = f"{g['low']:.4f}" if g["high"] - g["low"] < 5e-5 else f"{g['low']:.4f}–{g['high']:.4f}"
    head = " ".join(_BADGES[k] for k in g["kinds"]) + f" {len(members):,} images · pixel similarity {sim}"
    if "leakage" in g["kinds"]:
        splits = [s for s in _SPLITS if s in set(members["split"])]
        head += f" · in {' and '.join(splits)}"
        head += (": the split now keeps them on one side" if g["resolved"] else
                 ": the same picture would be trained on and evaluated on; exclude all but one")
    if "cross_class" in g["kinds"]:
        head += " · classes " + ", ".join(md_escape(c) for c in sorted(set(members["label"])))
    labels = members["label"].value_counts()
    with st.container(border=True, key=f"{prefix}_group_{index}"):
        st.markdown(head)
        shown = members.head(MEMBERS_SHOWN).to_dict("records")
        arrays = data.thumbs([r["path"] for r in shown], THUMB_PX)
        for start in range(0, len(shown), COLUMNS):  # side by side, COLUMNS a row
            for col, row, arr in zip(st.columns(COLUMNS), shown[start:start + COLUMNS], arrays[start:start + COLUMNS]):
                with col:
                    _thumb(arr, row["relpath"])
                    st.markdown(f"class {md_escape(row['label'])} · {row['split']}")
                    if ctx is not None:
                        other = next((c for c in labels.index if c != row["label"]), "")  # the other class
                        _actions(ctx, "dup", row["relpath"], row["label"], "near_duplicate", str(other))
        if len(members) > len(shown):
            st.caption(f"{len(members) - len(shown):,} more images of this group are not shown.")
        if ctx is None:
            return
        rest = [r for r in members["relpath"].iloc[1:] if r not in ctx.decisions]
        if rest:
            st.button("Keep the first, exclude the other copy" if len(rest) == 1 else
                      f"Keep the first, exclude the other {len(rest):,}", key=f"aud_dup_rest::{ctx.name}::{index}",
                      on_click=_on_exclude_rest, args=(ctx.ws, ctx.name, rest), icon=":material/filter_1:")


def problems_near_duplicates(ws: Workspace, name: str) -> None:
    """For the Problems tab: the near-duplicate groups of the dataset's newest audit side by side,
    at the audit's own similarity; what to do about them is the Audit tab's."""
    audits = ta.list_audits(ws, name)
    if not audits:
        st.caption("Near-duplicates (the same photo resized, re-encoded or slightly cropped) are found by an "
                   "audit: run one on the Audit tab.")
        return
    newest = audits[0]
    try:
        result = saved_audit(str(ws.root), name, str(newest["id"]))
    except TLCoreError as exc:
        show_error(exc)
        return
    threshold = result.spec.similarity
    groups = duplicate_groups(result.near_duplicates(similarity=threshold), result.quality)
    when = str(newest.get("created", "")).replace("T", " ")[:16]
    if not groups:
        st.caption(f"The newest audit ({when}) found no near-duplicates at a pixel similarity of {threshold:g}.")
        return
    leaking = sum(g["kind"] == "leakage" for g in groups)
    st.markdown(f"**Near-duplicates** in the newest audit ({when}, pixel similarity from {threshold:g}): "
                f"{len(groups):,} groups, {leaking:,} across splits. Keep, relabel or exclude them on the Audit tab.")
    start = fields.page_start(len(groups), GROUPS_PER_PAGE, f"ds_near_page::{name}")
    for i, g in enumerate(groups[start:start + GROUPS_PER_PAGE]):
        _group_card(None, g, start + i, prefix="ds_near")


def _duplicates_list(ctx: _Ctx, result: ta.AuditResult, threshold: float, sim_key: str, low: float) -> None:
    name = ctx.name
    spec = result.spec
    st.slider("Similarity threshold", min_value=low, max_value=1.0, step=0.001, format="%.3f", key=sim_key,
              persist_state=place.KEPT,
              help=f"Pixel similarity from which two images count as near-duplicates (1 = the same pixels). The "
                   f"audit used {spec.similarity:g} and saved the pairs down to {low:g}; moving it re-reads them "
                   "without auditing again.")
    groups = duplicate_groups(result.near_duplicates(similarity=threshold), result.quality)
    if not groups:
        st.success(f"No near-duplicates from a pixel similarity of {threshold:.3f}.")
        return
    kinds = [k for k in DUP_KINDS if any(k in g["kinds"] for g in groups)]
    c1, c2 = st.columns(2)
    kind_key, cls_key = f"aud_dup_kind::{name}", f"aud_dup_cls::{name}"
    _keep_valid(kind_key, kinds)
    _keep_valid(cls_key, result.class_names)
    chosen_kinds = c1.multiselect("Kind", kinds, key=kind_key, format_func=DUP_KINDS.get, placeholder="All kinds",
                                  persist_state=place.KEPT)
    chosen_cls = c2.multiselect("Classes", result.class_names, key=cls_key, placeholder="All classes",
                                persist_state=place.KEPT, help="The groups with an image of one of these classes.")
    view = [g for g in groups if (not chosen_kinds or set(g["kinds"]) & set(chosen_kinds))
            and (not chosen_cls or set(g["members"]["label"]) & set(chosen_cls))
            and not (st.session_state.get(f"aud_hide::{name}") and ctx.decided(g["members"]["relpath"]).all())]
    leaking = sum(g["kind"] == "leakage" for g in groups)
    st.caption(f"{len(view):,} of {len(groups):,} groups shown ({leaking:,} across splits), leakage first, then "
               "by similarity.")
    start = fields.page_start(len(view), GROUPS_PER_PAGE, f"aud_dup_page::{name}")
    for i, g in enumerate(view[start:start + GROUPS_PER_PAGE]):
        _group_card(ctx, g, start + i)


def _quality_lines(row: dict, t: dict[str, float]) -> list[str]:
    lines = []
    if row.get("blurry"):
        lines.append(f"**blurry**: sharpness {row['sharpness']:.1f} < {t['blur']:g}")
    if row.get("dark"):
        lines.append(f"**dark**: highlights {row['highlights']:.0f} < {t['dark']:g}")
    if row.get("bright"):
        lines.append(f"**bright**: shadows {row['shadows']:.0f} > {t['bright']:g}")
    if row.get("uniform"):
        lines.append(f"**uniform**: entropy {row['entropy']:.2f} < {t['entropy']:g} bits")
    return lines


def _quality_list(ctx: _Ctx, result: ta.AuditResult) -> None:
    name = ctx.name
    q = result.quality_issues()
    t = result.summary["quality"]["thresholds"]
    if not len(q):
        st.success("No photo has a quality flag.")
        return
    # How far past its threshold each image is (smaller: worse), so the worst come first.
    far = np.minimum.reduce([
        np.where(q["blurry"], q["sharpness"] / max(t["blur"], 1e-9), np.inf),
        np.where(q["dark"], q["highlights"] / max(t["dark"], 1e-9), np.inf),
        np.where(q["bright"], (255 - q["shadows"]) / max(255 - t["bright"], 1e-9), np.inf),
        np.where(q["uniform"], q["entropy"] / max(t["entropy"], 1e-9), np.inf),
    ])
    q = q.assign(_far=far).sort_values(["_far", "relpath"], kind="stable")
    kinds = [k for k in ta.QUALITY_FLAGS if q[k].any()]
    c1, c2 = st.columns(2)
    kind_key, cls_key = f"aud_q_kind::{name}", f"aud_q_cls::{name}"
    _keep_valid(kind_key, kinds)
    _keep_valid(cls_key, result.class_names)
    chosen_kinds = c1.multiselect("Kind", kinds, key=kind_key, placeholder="All kinds", persist_state=place.KEPT)
    chosen_cls = c2.multiselect("Classes", result.class_names, key=cls_key, placeholder="All classes",
                                persist_state=place.KEPT)
    view = q
    if chosen_kinds:
        view = view[view[chosen_kinds].any(axis=1)]
    if chosen_cls:
        view = view[view["label"].isin(chosen_cls)]
    if st.session_state.get(f"aud_hide::{name}"):
        view = view[~ctx.decided(view["relpath"])]
    st.caption(f"{len(view):,} of {len(q):,} flagged photos shown, the furthest past a threshold first: blurry below "
               f"sharpness {t['blur']:g}, dark below highlights {t['dark']:g}, bright above shadows {t['bright']:g}, "
               f"uniform below entropy {t['entropy']:g} bits.")
    start = fields.page_start(len(view), PER_PAGE, f"aud_q_page::{name}")

    def describe(r: dict) -> str:
        return "  \n".join(_quality_lines(r, t) + [f"class {md_escape(r['label'])} · {r['split']}"])

    _grid(ctx, "q", view.iloc[start:start + PER_PAGE], describe, lambda r: str(r["flags"]).replace(" ", ""))


def _decisions_list(ctx: _Ctx, everything: list[Override], stale: set[str]) -> None:
    ws, name = ctx.ws, ctx.name
    st.caption(f"Every decision, newest first. They are saved in {md_escape(tds.overrides_path(ws, name))}; the "
               "image files are never touched or moved. The split, training, search and evaluation read them. The "
               "latest decision about an image counts; undoing it brings back the one before.")
    if everything:
        table = pd.DataFrame([d.to_dict() for d in reversed(everything)])
        table["counts"] = [ctx.decisions.get(r) is not None and ctx.decisions[r].seq == s
                           for r, s in zip(table["relpath"], table["seq"])]
        table["file_gone"] = table["relpath"].isin(stale)
        st.dataframe(table, hide_index=True, key=f"aud_decisions::{name}",
                     column_order=["seq", "action", "relpath", "label", "flag", "counts", "file_gone", "note", "at"],
                     column_config={"seq": st.column_config.NumberColumn("#", width="small"),
                                    "relpath": st.column_config.TextColumn("file", width="medium"),
                                    "label": st.column_config.TextColumn("new label"),
                                    "counts": st.column_config.CheckboxColumn("counts now"),
                                    "file_gone": st.column_config.CheckboxColumn("file gone")})
    else:
        st.info("No decisions yet: Keep, Relabel or Exclude an image in the other lists.")
    c1, c2 = st.columns(2)
    last = max(everything, key=lambda d: d.seq) if everything else None
    c1.button("Undo the last decision", key=f"aud_undo_last::{name}", disabled=not everything,
              on_click=_on_undo_last, args=(ws, name, (last.seq, last.at) if last else None), icon=":material/undo:")
    c2.download_button("Download the decisions (CSV)", tds.overrides_csv(ws, name), file_name=f"{name}-decisions.csv",
                       mime="text/csv", key=f"aud_csv::{name}", on_click="ignore", disabled=not everything,
                       icon=":material/download:")
    with place.expander("Import decisions (CSV)", key=f"aud_import_open::{name}"):
        st.caption("A CSV as the download above writes it (seq, label, flag, note and at may be empty). A bad row "
                   "refuses the whole file, naming its line; the decisions stay as they were.")
        place.uploader("Decisions (CSV)", type=["csv"], key=f"aud_import::{name}")
        st.checkbox("Replace the current decisions (instead of adding to them)", key=f"aud_import_replace::{name}")
        st.button("Import", key=f"aud_import_btn::{name}", on_click=_on_import, args=(ws, name))


# ------------------------------------------------------------------ the run section
def _progress_view(ws: Workspace, name: str, job_id: str) -> None:
    """A running job's progress (a fragment on a timer); a full rerun once it has ended."""
    try:
        status = ta.audit_status(ws, name, job_id)
    except TLCoreError as exc:
        show_error(exc)
        return
    if status.get("state") in _FINAL:
        if not st.session_state.get(_FULL):
            st.rerun()  # draw the whole tab again: the result, or why it failed
        return
    done, total = int(status.get("done") or 0), int(status.get("total") or 0)
    if status.get("state") == "queued" or not total:
        text = "Starting: loading TensorFlow and the images…"
    else:
        text = f"{status.get('text') or 'Working'}: {done:,} of {total:,}"
    st.progress(min(1.0, done / total) if total else 0.0, text=md_escape(text))
    started = float(status.get("started") or time.time())
    st.caption(f"Auditing for {tf.seconds(time.time() - started)} (job {md_escape(job_id)}); it runs in the "
               "background, so you can keep working or leave the page.")


def _settle(ws: Workspace, name: str, jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The running job (None when none runs); a job this session watched that has finished since: its
    audit is selected and a banner says what it found."""
    ss = st.session_state
    key = f"aud_watch::{name}"
    running = next((j for j in jobs if j.get("state") not in _FINAL), None)
    watched = ss.get(key)
    if watched and (running is None or running["id"] != watched):
        ss.pop(key, None)
        ended = next((j for j in jobs if j["id"] == watched), None)
        if ended is not None and ended.get("state") == "finished" and ended.get("audit"):
            ss[f"aud_id::{name}"] = ended["audit"]
            found = next((a for a in ta.list_audits(ws, name) if a.get("id") == ended["audit"]), None)
            if found is not None:
                nd = found["near_duplicates"]
                place.flash("success", f"Audit finished in {tf.seconds(found.get('seconds'), 1)}: "
                            f"{found['labels']['issues']:,} suspected label errors, {nd['pairs']:,} near-duplicate "
                            f"pairs ({nd['leakage']:,} across splits), {found['quality']['flagged']:,} photos with "
                            "a quality flag.", slot=SLOT)
    if running is not None:
        ss[key] = running["id"]
    return running


def _run_section(ws: Workspace, name: str, running: dict[str, Any] | None, has_audit: bool) -> None:
    ss = st.session_state
    _init_form(name)
    title = "Run the audit again" if has_audit else "Run an audit"
    with place.expander(title, key=RUN_OPEN.format(name), expanded=not has_audit, icon=":material/fact_check:"):
        st.caption(
            "Looks for suspected label errors (confident learning on the out-of-fold predictions of a logistic "
            "regression on the backbone's features), near-duplicates and leakage across the splits, and blurry, "
            "dark, bright or uniform photos. The first audit computes the images' features; later ones reuse them. "
            "The test split's labels are not audited unless you add it; near-duplicates and photo quality are "
            "checked on every split."
        )
        c1, c2, c3 = st.columns([1, 1, 2])
        fields.number(c1, "Image size (px)", lo=32, hi=1024, key=f"{_FORM}size::{name}", step=32,
                      persist_state=place.KEPT,
                      help="The side the backbone sees. 96 is fast on a CPU and enough for an audit.")
        fields.number(c2, "Folds", lo=2, hi=50, key=f"{_FORM}folds::{name}", step=1, persist_state=place.KEPT,
                      help="k of the k-fold cross-validation: every class needs at least this many images.")
        c3.multiselect("Splits whose labels are audited", list(_SPLITS), key=f"aud_splits::{name}",
                       persist_state=place.KEPT,
                       help="Train and val by default: keep the test split untouched to measure the model.")
        st.button("Run audit", key=f"aud_run::{name}", type="primary", disabled=running is not None,
                  on_click=_on_run, args=(ws, name), icon=":material/play_arrow:",
                  help="One audit of a dataset at a time." if running is not None else None)
    if running is not None:  # under the expander, so that closing it never hides the progress
        ss[_FULL] = True
        try:
            st.fragment(run_every=REFRESH_S)(_progress_view)(ws, name, running["id"])
        finally:
            ss[_FULL] = False


def _failure(ws: Workspace, name: str, jobs: list[dict[str, Any]], audits: list[dict[str, Any]]) -> None:
    """The newest job, when it failed after the newest audit: its message (what to do in it) and its log's end."""
    if not jobs or jobs[0].get("state") != "failed":
        return
    job = jobs[0]
    if audits and _created_ts(audits[0]) >= float(job.get("ended") or job.get("started") or 0):
        return
    st.error(md_escape(f"The audit failed: {job.get('error') or 'it stopped without a message'}"),
             icon=":material/error:")
    tail = log_tail(_job_log(ws, name, str(job["id"])), LOG_LINES)
    if tail:
        st.caption("The end of its log:")
        st.code(tail, language=None)


# ------------------------------------------------------------------ the tab
def _pick_audit(name: str, audits: list[dict[str, Any]]) -> str:
    ss = st.session_state
    key = f"aud_id::{name}"
    ids = [a["id"] for a in audits]
    if ss.get(key) not in ids:
        ss[key] = ids[0]
    if len(ids) > 1:
        by_id = {a["id"]: a for a in audits}

        def label(i: str) -> str:
            a = by_id[i]
            return (f"{str(a.get('created', '')).replace('T', ' ')[:16]} · {a['labels']['issues']:,} label flags · "
                    f"{a['near_duplicates']['pairs']:,} near-duplicate pairs · {a['quality']['flagged']:,} quality flags")

        st.selectbox("Audit", ids, key=key, format_func=label, help="Newest first.", persist_state=place.KEPT)
    return str(ss[key])


def _settings_caption(result: ta.AuditResult) -> str:
    s, spec = result.summary, result.spec
    lab, images = s["labels"], s["images"]
    oof = lab.get("oof") or {}
    by_split = ", ".join(f"{k} {v:,}" for k, v in images["by_split"].items())
    acc = oof.get("oof_accuracy")
    text = (f"Audit of {str(s.get('created', '')).replace('T', ' ')[:19]} ({tf.seconds(s.get('seconds'), 1)}"
            f"{', features from the cache' if s.get('cached', {}).get('features') else ''}): the labels of the "
            f"{' and '.join(spec.splits)} split{'s' if len(spec.splits) > 1 else ''} ({lab['audited']:,} images"
            f"{'' if 'test' in spec.splits else '; the test split is not audited'}), near-duplicates and quality "
            f"over all {images['total']:,} ({by_split}). {spec.backbone} features at {spec.image_size} px, "
            f"{spec.folds}-fold logistic regression"
            + (f" (out-of-fold accuracy {tf.pct(acc)})" if acc is not None else "")
            + f"; near-duplicates from a pixel similarity of {spec.similarity:g}")
    if s.get("near_duplicates", {}).get("split_groups_saved"):
        text += ", their groups now kept on one side of the split"
    return md_escape(text + ".")


def _stale(ctx: _Ctx, index: pd.DataFrame, everything: list[Override]) -> set[str]:
    """Warn about decisions naming files that are gone (skipped by training, never fatal); their relpaths."""
    gone = tds.stale_overrides(index, everything)
    if not gone:
        return set()
    rels = {d.relpath for d in gone}
    shown = ", ".join(md_escape(r) for r in sorted(rels)[:5]) + (" and more" if len(rels) > 5 else "")
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    n = sum(d.relpath in rels for d in everything)  # what "Forget them" removes
    what = (f"{n:,} decision{'' if n == 1 else 's'} name{'s' if n == 1 else ''} "
            + ("a file" if len(rels) == 1 else f"{len(rels):,} files"))
    c1.warning(f"{what} no longer in the dataset ({shown}): training skips them. Forget them, or rescan if the "
               "files are back.", icon=":material/warning:")
    c2.button("Forget them", key=f"aud_forget::{ctx.name}", on_click=_on_forget,
              args=(ctx.ws, ctx.name, [d.seq for d in everything if d.relpath in rels]))
    return rels


def _results(ctx: _Ctx, result: ta.AuditResult, index: pd.DataFrame, everything: list[Override]) -> None:
    name, s = ctx.name, result.summary
    st.caption(_settings_caption(result))
    for note in s.get("notes", []):
        st.caption(md_escape(note))
    audited = set(result.quality["relpath"].astype(str))
    m = st.columns(5)
    m[0].metric("Suspected label errors", f"{s['labels']['issues']:,}",
                help=f"Confident learning estimates {s['labels'].get('estimated_errors', 0):,} in all.")
    m[1].metric("Near-duplicate pairs", f"{s['near_duplicates']['pairs']:,}",
                help=f"At the audit's pixel similarity of {result.spec.similarity:g}.")
    m[2].metric("Across splits (leakage)", f"{s['near_duplicates']['leakage']:,}")
    m[3].metric("Quality flags", f"{s['quality']['flagged']:,}")
    m[4].metric("Decided", f"{sum(r in audited for r in ctx.decisions):,}", help="Images of this audit with a decision.")
    stale = _stale(ctx, index, everything)
    st.checkbox("Hide the images already decided about", key=f"aud_hide::{name}", persist_state=place.KEPT)

    spec = result.spec
    low = float(min(spec.similarity, spec.pairs_similarity))
    sim_key = f"aud_sim::{name}::{result.id}"
    ss = st.session_state
    ss[sim_key] = min(1.0, max(low, float(ss.get(sim_key, spec.similarity))))
    threshold = float(ss[sim_key])
    groups = len(duplicate_groups(result.near_duplicates(similarity=threshold), result.quality))
    tabs = place.tabs([f"Labels ({s['labels']['issues']:,})", f"Near-duplicates ({groups:,})",
                       f"Quality ({s['quality']['flagged']:,})", f"Decisions ({len(ctx.decisions):,})"], key=TAB)
    with tabs[0]:
        _labels_list(ctx, result)
    with tabs[1]:
        _duplicates_list(ctx, result, threshold, sim_key, low)
    with tabs[2]:
        _quality_list(ctx, result)
    with tabs[3]:
        _decisions_list(ctx, everything, stale)


def audit_tab(ws: Workspace, name: str, version: str, classes: list[str]) -> None:
    """The Audit tab of dataset ``name`` (``version``: ``tlui.data.dataset_version``; ``classes``: its classes,
    the choices of *Relabel as*)."""
    root = str(ws.root)
    try:
        jobs = ta.audit_jobs(ws, name)
        running = _settle(ws, name, jobs)
        audits = ta.list_audits(ws, name)
        everything = tds.load_overrides(ws, name)
    except TLCoreError as exc:
        show_error(exc)
        return
    place.banners(SLOT)
    _run_section(ws, name, running, bool(audits))
    _failure(ws, name, jobs, audits)
    ctx = _Ctx(ws, name, list(classes), tds.current_overrides(everything))
    index = data.index(root, name, version)
    if not audits:
        if running is None:
            st.info(f"{md_escape(name)} has not been audited yet: run an audit above.")
        if everything:
            st.markdown("**Decisions**")
            _stale(ctx, index, everything)
            _decisions_list(ctx, everything, set())
        return
    audit_id = _pick_audit(name, audits)
    try:
        result = saved_audit(root, name, audit_id)
    except TLCoreError as exc:
        show_error(exc)
        return
    _results(ctx, result, index, everything)
