"""``python -m tlcore datasets audit | relabel | exclude | keep | overrides``: trust the data.

Thin over ``tlcore.audit`` and the override manifest of ``tlcore.datasets``, registered
into the ``datasets`` group by ``cli._datasets``:

- ``audit NAME`` runs an audit (suspected label errors, classes confused as a whole,
  near-duplicates and leakage, photo quality), saves it, and prints a report (``--json`` for
  machines); ``--list`` lists the saved audits, ``--show [ID]`` prints one again without
  recomputing. ``--spec FILE`` and ``--status-file FILE`` are how the Datasets page's
  background job (``tlcore.audit.launch_audit``) runs it.
- ``relabel NAME RELPATH... --to CLASS``, ``exclude NAME RELPATH...``, ``keep NAME RELPATH...``
  record decisions; ``exclude`` / ``keep`` also take ``--from-audit label_issues | quality |
  duplicates`` (the latest audit's flags; for duplicates, every member of a group but the first).
- ``overrides NAME`` lists the decisions (``--list``, the default), undoes them (``--undo
  RELPATH...``, ``--undo-seq N...``, ``--undo-last``), exports them as CSV (``--export FILE``,
  ``-`` for stdout) or imports a CSV (``--import FILE``, ``--replace``).

Errors are ``TLCoreError``s: one ``error: ...`` line and exit status 2 (``tlcore.cli.main``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tlcore._usertext import counted
from tlcore.cli._dataset_arg import demo_if_named
from tlcore.cli._files import read_text
from tlcore.cli._progress import ProgressBar
from tlcore.errors import ConfigError, TLCoreError

FROM_AUDIT = ("label_issues", "quality", "duplicates")


def _ws(args: argparse.Namespace):
    """The workspace, with the built-in demo registered if the command names it (a fresh workspace)."""
    from tlcore.cli import workspace_from

    ws = workspace_from(args)
    demo_if_named(ws, args.name)
    return ws


class _StagedBar:
    """A progress callback ``(text, done, total)`` that starts a new terminal bar for each stage."""

    def __init__(self) -> None:
        self.text: str | None = None
        self.bar: ProgressBar | None = None

    def __call__(self, text: str, done: int, total: int) -> None:
        if text != self.text:
            self.close()
            self.text, self.bar = text, ProgressBar(text)
        assert self.bar is not None
        self.bar(done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _spec_from(args: argparse.Namespace):
    from tlcore.audit import AuditSpec

    data: dict[str, Any] = {}
    if args.spec:
        text = read_text(args.spec, "the audit spec file", "Give a YAML file written by AuditSpec.to_yaml().")
        data.update(AuditSpec.fields_from_yaml(text))
    for field, value in (("image_size", args.image_size), ("folds", args.folds), ("similarity", args.similarity)):
        if value is not None:
            data[field] = value
    if args.weights is not None:
        data["weights"] = None if args.weights == "none" else args.weights
    if args.splits is not None:
        data["splits"] = [s.strip() for s in args.splits.split(",") if s.strip()]
    if args.include_test:
        data["splits"] = list(dict.fromkeys([*(data.get("splits") or ["train", "val"]), "test"]))
    if args.no_group_split:
        data["group_split"] = False
    return AuditSpec.from_dict(data)


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def print_audit(result, *, limit: int = 20, out=None) -> None:
    """The audit as people read it: counts, the top suspected label errors, confused classes,
    near-duplicates (leakage first), quality flags, notes."""
    w = (out or sys.stdout).write
    s = result.summary
    lab, nd, q = s["labels"], s["near_duplicates"], s["quality"]
    oof = lab["oof"]
    w(f"Audit {result.id} of {result.dataset!r}: {s['images']['total']} images "
      f"({', '.join(f'{k} {v}' for k, v in s['images']['by_split'].items())}), {s['seconds']:.1f}s"
      f"{' (features from the cache)' if s['cached']['features'] else ''}\n")
    w(f"\nLabels ({', '.join(s['spec']['splits'])}: {lab['audited']} images; {oof['folds']}-fold logistic regression, "
      f"out-of-fold accuracy {oof['oof_accuracy']:.3f}):\n")
    w(f"  {lab['issues']} suspected label errors (confident learning estimates {lab['estimated_errors']} in all)\n")
    issues = result.label_issues()
    if len(issues):
        width = min(60, max(len(r) for r in issues["relpath"].head(limit)))
        for row in issues.head(limit).itertuples():
            mark = f"  [{row.decision}]" if row.decision else ""
            w(f"  {row.rank:>5}  {row.relpath:<{width}}  {row.label} -> {row.suggested}  "
              f"(confidence in its label {_fmt(row.self_confidence)}){mark}\n")
        if len(issues) > limit:
            w(f"  ... and {len(issues) - limit} more (--limit N, or --json for all)\n")
    pairs = result.confused_pairs(min_count=2)
    if pairs:
        w("  Classes confused as a whole:\n")
        for p in pairs[:5]:
            w(f"    {p['text']}\n")
    w(f"\nNear-duplicates (pixel similarity >= {s['spec']['similarity']}): {nd['pairs']} pairs in {nd['groups']} groups; "
      f"{nd['leakage']} across splits (leakage), {nd['cross_class']} with different labels\n")
    near = result.near_duplicates()
    if len(near):
        order = {"leakage": 0, "cross_class": 1, "within_class": 2}
        near = near.assign(_o=near["kind"].map(order)).sort_values(["_o", "similarity"], ascending=[True, False])
        for row in near.head(limit).itertuples():
            fixed = " (the split now keeps them together)" if row.kind == "leakage" and not row.leakage_after else ""
            w(f"  {row.kind:<12} {row.similarity:.4f}  {row.relpath_a} ({row.split_a}, {row.label_a})  ~  "
              f"{row.relpath_b} ({row.split_b}, {row.label_b}){fixed}\n")
        if len(near) > limit:
            w(f"  ... and {len(near) - limit} more\n")
    if nd["leakage_after"]:
        w(f"  {nd['leakage_after']} leakage pairs remain across the dataset's own split folders: exclude one image of "
          f"each ('python -m tlcore datasets exclude {result.dataset} --from-audit duplicates').\n")
    t = q["thresholds"]
    w(f"\nPhoto quality: {q['flagged']} flagged ({', '.join(f'{k} {v}' for k, v in q['counts'].items())}; "
      f"blurry below sharpness {t['blur']:g}, dark below highlights {t['dark']:g}, bright above shadows {t['bright']:g}, "
      f"uniform below entropy {t['entropy']:g} bits)\n")
    for row in result.quality_issues().head(limit).itertuples():
        w(f"  {row.flags:<16} {row.relpath}  (sharpness {row.sharpness:.1f}, highlights {row.highlights:.0f}, "
          f"shadows {row.shadows:.0f}, entropy {row.entropy:.2f})\n")
    for note in s.get("notes", []):
        w(f"note: {note}\n")


def _records(df) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records"))


def audit_payload(result) -> dict[str, Any]:
    """The audit as JSON: the summary, every flagged item, and where it was saved."""
    return {**result.summary, "saved": str(result.folder) if result.folder else None,
            "label_issues": _records(result.label_issues()), "confused_pairs": result.confused_pairs(),
            "near_duplicates": _records(result.near_duplicates()), "quality_issues": _records(result.quality_issues())}


def cmd_audit(args: argparse.Namespace) -> int:
    from tlcore.audit import audit_dataset, list_audits, load_audit
    from tlcore.audit._jobs import StatusWriter

    if args.limit < 1:  # before any work: the report is printed only once the audit is done
        raise ConfigError("--limit must be at least 1.", received=f"--limit {args.limit}",
                          fix="Give how many rows each section of the report shows, e.g. --limit 20; --json prints "
                              "every row.")
    ws = _ws(args)
    if args.list:
        audits = list_audits(ws, args.name)
        if args.json:
            print(json.dumps([{k: a.get(k) for k in ("id", "created", "seconds", "images", "labels",
                                                     "near_duplicates", "quality")} for a in audits], default=str))
            return 0
        if not audits:
            print(f"No audits of {args.name!r} yet. Run: python -m tlcore datasets audit {args.name}")
        for a in audits:
            print(f"{a['id']}  {a['created']}  {a['labels']['issues']:>5} label issues  "
                  f"{a['near_duplicates']['pairs']:>5} near-duplicate pairs  {a['quality']['flagged']:>5} quality flags")
        return 0
    if args.show is not None:
        result = load_audit(ws, args.name, None if args.show == "latest" else args.show)
    else:
        status = StatusWriter(args.status_file)  # the backend starts quietly in tlcore.runtime.configure
        bar = _StagedBar()

        def progress(text: str, done: int, total: int) -> None:
            bar(text, done, total)
            status.progress(text, done, total)

        try:
            spec = _spec_from(args)
            result = audit_dataset(ws, args.name, spec, progress=progress)
        except TLCoreError as exc:
            status.failed(str(exc))
            raise
        except Exception as exc:  # the job must say why it ended
            status.failed(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            bar.close()
        status.finished(result.id, float(result.summary["seconds"]))
    if args.json:
        json.dump(audit_payload(result), sys.stdout, default=str)
        sys.stdout.write("\n")
    else:
        print_audit(result, limit=args.limit)
        if result.folder:
            print(f"\nsaved: {result.folder}")
    return 0


def _relpaths_from_audit(ws, name: str, which: str) -> list[str]:
    from tlcore.audit import load_audit

    result = load_audit(ws, name)
    if which == "label_issues":
        return result.label_issues(include_reviewed=False)["relpath"].tolist()
    if which == "quality":
        q = result.quality_issues()
        return q[q["decision"] == ""]["relpath"].tolist()
    near = result.near_duplicates()
    decided = {**dict(zip(near["relpath_a"].astype(str), near["decision_a"].astype(str))),
               **dict(zip(near["relpath_b"].astype(str), near["decision_b"].astype(str)))}
    out: list[str] = []
    for _, members in near.groupby("group"):
        names = sorted(set(members["relpath_a"].astype(str)) | set(members["relpath_b"].astype(str)))
        # keep the first image of each group still in the dataset (one the user excluded does not count),
        # and leave the images already decided alone, so that running the command again adds nothing
        kept = next((n for n in names if decided.get(n, "") != "exclude"), None)
        out.extend(n for n in names if n != kept and not decided.get(n, ""))
    return out


def _decide(args: argparse.Namespace, action: str) -> int:
    """Record ``action`` for the images named (an absolute path inside the dataset's folder is taken too)
    and those ``--from-audit`` adds. An image the decision leaves as it is (already excluded, already
    labelled so) gets a line and is not recorded again; when every image named is so, nothing is recorded
    and the exit status is 0."""
    from tlcore.datasets import add_overrides, dataset_relpath, unchanged_decisions

    ws = _ws(args)
    rels = list(dict.fromkeys(dataset_relpath(ws, args.name, r) for r in args.relpaths or []))
    same = unchanged_decisions(ws, args.name, rels, action, label=getattr(args, "to", "") or "") if rels else {}
    for rel, why in same.items():
        print(f"{rel} {why}; skipped.")
    rels = [r for r in rels if r not in same]
    if same and not rels and not getattr(args, "from_audit", None):
        print(f"Nothing recorded in {args.name!r}: {'that image' if len(same) == 1 else 'those images'} would "
              "not change.")
        return 0
    if getattr(args, "from_audit", None):
        rels += _relpaths_from_audit(ws, args.name, args.from_audit)
        if not rels:
            print(f"Nothing to {action}: the latest audit has no undecided {args.from_audit.replace('_', ' ')}.")
            return 0
    flag = args.flag or ({"label_issues": "label_issue", "quality": "quality", "duplicates": "near_duplicate"}
                         .get(getattr(args, "from_audit", None) or "", ""))
    new = add_overrides(ws, args.name, rels, action, label=getattr(args, "to", "") or "", flag=flag,
                        note=args.note or "")
    verb = {"relabel": f"relabelled as {args.to!r}" if action == "relabel" else "", "exclude": "excluded",
            "keep": "kept (reviewed)"}[action]
    seqs = f"decision {new[0].seq}" if len(new) == 1 else f"decisions {new[0].seq}-{new[-1].seq}"
    print(f"{len(new)} image{'s' if len(new) != 1 else ''} {verb} in {args.name!r} ({seqs}); undo with "
          f"'python -m tlcore datasets overrides {args.name} --undo RELPATH'.")
    return 0


def cmd_relabel(args: argparse.Namespace) -> int:
    return _decide(args, "relabel")


def cmd_exclude(args: argparse.Namespace) -> int:
    return _decide(args, "exclude")


def cmd_keep(args: argparse.Namespace) -> int:
    return _decide(args, "keep")


def cmd_overrides(args: argparse.Namespace) -> int:
    from tlcore.datasets import (
        current_overrides,
        import_overrides_csv,
        load_index,
        load_overrides,
        overrides_csv,
        undo_overrides,
    )

    ws = _ws(args)
    name = args.name
    if args.undo or args.undo_seq or args.undo_last:
        removed = undo_overrides(ws, name, relpaths=args.undo or None, seqs=args.undo_seq or None,
                                 last=args.undo_last)
        for d in removed:
            print(f"undone: #{d.seq} {d.action}{' ' + repr(d.label) if d.label else ''} {d.relpath}")
        return 0
    if args.import_file:
        text = read_text(args.import_file, "the CSV to import",
                         "Give a UTF-8 CSV written by 'datasets overrides NAME --export FILE'.", stdin=True)
        new = import_overrides_csv(ws, name, text, replace=args.replace)
        replaced = " (replacing the previous ones)" if args.replace else ""
        print(f"Imported {len(new)} decision{'' if len(new) == 1 else 's'} into {name!r}{replaced}.")
        return 0
    if args.export:
        text = overrides_csv(ws, name)
        if args.export == "-":
            sys.stdout.write(text)
        else:
            from tlcore._fsutil import atomic_write_text

            atomic_write_text(args.export, text)
            print(f"Exported {counted(max(0, text.count(chr(10)) - 1), 'decision')} to {args.export}.")
        return 0
    decisions = load_overrides(ws, name)
    present = set(load_index(ws, name)["relpath"].astype(str))
    current = {d.seq for d in current_overrides(decisions).values()}
    if args.json:
        print(json.dumps([{**d.to_dict(), "current": d.seq in current, "missing": d.relpath not in present}
                          for d in decisions]))
        return 0
    if not decisions:
        print(f"No decisions about {name!r} yet (datasets relabel | exclude | keep).")
        return 0
    for d in decisions:
        state = "" if d.seq in current else "  (superseded)"
        gone = "  (file no longer in the dataset: skipped)" if d.relpath not in present else ""
        label = f" -> {d.label}" if d.label else ""
        extra = "".join(f"  [{x}]" for x in (d.flag, d.note) if x)
        print(f"#{d.seq:<5} {d.action:<8} {d.relpath}{label}{extra}  {d.at}{state}{gone}")
    return 0


def register(g: argparse._SubParsersAction) -> None:
    """Add the commands to the ``datasets`` group's subparsers ``g``."""
    c = g.add_parser("audit", help="find suspected label errors, near-duplicates and leakage, and poor photos",
                     description="Out-of-fold probabilities of a k-fold logistic regression on cached backbone "
                     "features, then confident learning (suspected label errors, classes confused as a whole); "
                     "near-duplicates and leakage across splits; photo quality. Saved under "
                     "<workspace>/datasets/NAME/audits/. Never audits the test split's labels unless asked.")
    c.add_argument("name", help="a registered dataset")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.add_argument("--image-size", type=int, metavar="S", help="input side in pixels (default 96)")
    c.add_argument("--folds", type=int, metavar="K", help="folds of the cross-validation (default 5)")
    c.add_argument("--splits", metavar="A,B", help="splits whose labels are audited (default train,val)")
    c.add_argument("--include-test", action="store_true", help="also audit the test split's labels")
    c.add_argument("--similarity", type=float, metavar="X",
                   help="near-duplicates from this pixel similarity (default 0.995; 1 = identical)")
    c.add_argument("--weights", metavar="imagenet|none|PATH", help="backbone weights (default imagenet)")
    c.add_argument("--no-group-split", action="store_true",
                   help="do not make the split keep near-duplicate groups together")
    c.add_argument("--spec", metavar="FILE", help="an AuditSpec as YAML (the options above override it)")
    c.add_argument("--limit", type=int, default=20, metavar="N", help="rows per section in the report (default 20)")
    c.add_argument("--list", action="store_true", help="list the saved audits instead")
    c.add_argument("--show", nargs="?", const="latest", metavar="ID", help="print a saved audit (default the latest)")
    c.add_argument("--status-file", metavar="FILE", help=argparse.SUPPRESS)
    c.set_defaults(handler=cmd_audit)

    def decision_args(c: argparse.ArgumentParser, *, from_audit: bool) -> None:
        c.add_argument("name", help="a registered dataset")
        c.add_argument("relpaths", nargs="*", metavar="RELPATH", help="images, relative to the dataset folder")
        if from_audit:
            c.add_argument("--from-audit", choices=FROM_AUDIT,
                           help="also every undecided flag of the latest audit of this kind "
                                "(duplicates: all but the first image of each group)")
        c.add_argument("--flag", help="which flag this answers (label_issue, near_duplicate, blurry, ...)")
        c.add_argument("--note", help="free text kept with the decision")

    c = g.add_parser("relabel", help="give images another label (the files stay where they are)")
    decision_args(c, from_audit=False)
    c.add_argument("--to", required=True, metavar="CLASS", help="the new label: one of the dataset's classes")
    c.set_defaults(handler=cmd_relabel)

    c = g.add_parser("exclude", help="leave images out of the split, training, search and evaluation")
    decision_args(c, from_audit=True)
    c.set_defaults(handler=cmd_exclude)

    c = g.add_parser("keep", help="mark flagged images as reviewed and fine")
    decision_args(c, from_audit=True)
    c.set_defaults(handler=cmd_keep)

    c = g.add_parser("overrides", help="list, undo, export or import the keep / relabel / exclude decisions")
    c.add_argument("name", help="a registered dataset")
    c.add_argument("--list", action="store_true", help="list the decisions (the default)")
    c.add_argument("--json", action="store_true", help="list them as JSON")
    c.add_argument("--undo", nargs="+", metavar="RELPATH", help="undo the latest decision about these images")
    c.add_argument("--undo-seq", nargs="+", type=int, metavar="N", help="undo the decisions with these numbers")
    c.add_argument("--undo-last", action="store_true", help="undo the most recent decision")
    c.add_argument("--export", metavar="FILE", help="write every decision as CSV ('-': to stdout)")
    c.add_argument("--import", dest="import_file", metavar="FILE", help="add the decisions of a CSV ('-': stdin)")
    c.add_argument("--replace", action="store_true", help="with --import: replace every decision")
    c.set_defaults(handler=cmd_overrides)
