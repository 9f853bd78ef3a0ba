"""``python -m tlcore augment ...``: list, show, save, delete and preview augmentation pipelines.

Thin over ``tlcore.augment`` (the same pipelines as the Augmentations page):
``catalogue`` lists the transforms a pipeline may use and their parameters;
``save NAME --from-file F`` stores a spec (``steps: [...]``, or an albumentations
``A.to_dict`` / ``A.save`` file) as ``<workspace>/augmentations/NAME.yaml``;
``show`` prints it as albumentations serializes it; ``preview`` writes N augmented
PNGs of one image. A saved name (or a preset) is what ``train --augment`` and a
study spec's ``augment`` take.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from tlcore.cli._files import read_text
from tlcore.errors import AugmentationError


def _ws(args: argparse.Namespace):
    from tlcore.cli import workspace_from

    return workspace_from(args)


def _size(args: argparse.Namespace) -> tuple[int, int]:
    if args.size < 8 or args.size > 4096:
        raise AugmentationError("--size must be between 8 and 4096 pixels.", received=f"--size {args.size}")
    return (args.size, args.size)


def _cmd_list(args: argparse.Namespace) -> int:
    from tlcore import augment as au

    ws = _ws(args)
    rows = [{"name": n, "kind": "preset", "steps": au.preset_spec(n).names, "description": au.PRESET_DESCRIPTIONS[n]}
            for n in au.PRESETS]
    for name in au.list_pipelines(ws):
        try:
            steps, note = au.load_pipeline(ws, name).names, ""
        except AugmentationError as exc:
            steps, note = [], f"invalid: {exc}"
        rows.append({"name": name, "kind": "saved", "steps": steps, "description": note})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        what = r["description"] if r["kind"] == "preset" or r["description"] else ", ".join(r["steps"]) or "(no steps)"
        print(f"{r['name']:<{width}}  {r['kind']:<6}  {len(r['steps']):>2} steps  {what}")
    if not au.list_pipelines(ws):
        print("No saved pipelines yet. Save one with: python -m tlcore augment save NAME --from-file SPEC.yaml")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from tlcore import augment as au

    spec = au.get_spec(_ws(args), args.name)
    if args.spec:
        text = json.dumps(spec.to_dict(), indent=2) if args.format == "json" else spec.to_yaml()
    else:
        pipeline = au.build_pipeline(spec, image_size=_size(args))
        text = au.pipeline_to_json(pipeline) if args.format == "json" else au.pipeline_to_yaml(pipeline)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _cmd_save(args: argparse.Namespace) -> int:
    from tlcore import augment as au

    path = Path(args.from_file).expanduser()
    text = read_text(args.from_file, "the spec file",
                     "Give a YAML or JSON file with 'steps: [...]' or an albumentations A.to_dict / A.save output.")
    spec = au.parse_spec_text(text, source=f"The file {path.name}")
    out = au.save_pipeline(_ws(args), args.name, spec, overwrite=args.overwrite)
    print(f"Saved {args.name!r} ({len(spec.steps)} steps: {', '.join(spec.names) or 'none'}) to {out}")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    from tlcore import augment as au

    au.delete_pipeline(_ws(args), args.name)
    print(f"Deleted the saved pipeline {args.name!r}.")
    return 0


def _check_preview_out(ws, out: Path) -> None:
    """Refuse an ``--out`` that is a file, or that lies in a registered dataset's folder: the PNGs written
    there would be taken for photos of the class at the next rescan (augmented copies of one image, trained
    on and evaluated on).

    Raises:
        ConfigError: what is wrong with ``--out`` and which folder to give instead.
    """
    import os

    from tlcore.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError("--out names a file; the previews are written into a folder.", received=f"--out {out}",
                          fix="Give a folder (it is created if missing), e.g. --out augment-preview.")
    real = Path(os.path.realpath(out))
    for rec in ws.list_datasets():
        folder = Path(os.path.realpath(rec.path))
        if real == folder or real.is_relative_to(folder):
            raise ConfigError(
                f"--out lies in the folder of dataset {rec.name!r}: the previews would be taken for photos at its "
                "next rescan.", received=f"--out {out} (in {rec.path})",
                fix="Give a folder outside every dataset, e.g. --out augment-preview.")


def _cmd_preview(args: argparse.Namespace) -> int:
    from PIL import Image

    from tlcore import augment as au
    from tlcore._fsutil import atomic_write_bytes
    from tlcore.datasets import load_rgb, resize_to

    ws = _ws(args)
    spec = au.get_spec(ws, args.name)
    out = Path(args.out).expanduser()
    _check_preview_out(ws, out)
    image = load_rgb(Path(args.image).expanduser())
    if args.size is not None:
        image = resize_to(image, _size(args)[0], mode="pad")
    images = au.preview(image, spec, n=args.n, seed=args.seed)
    written = []
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img, "RGB").save(buf, format="PNG")
        target = out / f"{args.name}-seed{args.seed}-{i:02d}.png"
        atomic_write_bytes(target, buf.getvalue())
        written.append(target)
    print(f"Wrote {len(written)} previews of {args.name!r} ({image.shape[1]}x{image.shape[0]}) to {out}")
    return 0


def _cmd_catalogue(args: argparse.Namespace) -> int:
    from tlcore import augment as au

    infos = list(au.CATALOGUE.values())
    if args.transform:
        if args.transform not in au.CATALOGUE:
            raise AugmentationError("No transform of the catalogue has that name.", received=repr(args.transform),
                                    fix=f"Known transforms: {', '.join(au.CATALOGUE)}.")
        infos = [au.CATALOGUE[args.transform]]
    if args.json:
        payload = [
            {
                "name": t.name,
                "group": t.group,
                "description": t.description,
                "params": [
                    {"name": ps.name, "kind": ps.kind, "default": list(ps.default) if isinstance(ps.default, tuple) else ps.default,
                     "min": ps.min, "max": ps.max, "step": ps.step, "help": ps.help,
                     **({"choices": list(ps.choices)} if ps.choices else {}), **({"odd": True} if ps.odd else {})}
                    for ps in t.params
                ],
            }
            for t in infos
        ]
        print(json.dumps(payload, indent=2))
        return 0
    for group, label in au.GROUPS.items():
        members = [t for t in infos if t.group == group]
        if not members:
            continue
        print(f"{label}:")
        for t in members:
            print(f"  {t.name}: {t.description}")
            for ps in t.params:
                print(f"      {ps.name:<18} {ps.describe()}. {ps.help}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment", help="augmentation pipelines: presets, saved pipelines, previews")
    g = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = g.add_parser("list", help="the presets and the saved pipelines")
    c.add_argument("--json", action="store_true", help="print machine-readable JSON")
    c.set_defaults(handler=_cmd_list)

    c = g.add_parser("show", help="print a pipeline as albumentations serializes it (A.to_dict)")
    c.add_argument("name", help="a preset (none, light, medium, heavy) or a saved pipeline")
    c.add_argument("--format", choices=("yaml", "json"), default="yaml", help="output format (default yaml)")
    c.add_argument("--size", type=int, default=224,
                   help="output size of size-setting transforms such as RandomResizedCrop (default 224)")
    c.add_argument("--spec", action="store_true", help="print the workbench's spec (steps) instead")
    c.set_defaults(handler=_cmd_show)

    c = g.add_parser("save", help="save a pipeline from a spec file under a name")
    c.add_argument("name")
    c.add_argument("--from-file", required=True, metavar="SPEC.yaml",
                   help="YAML/JSON with 'steps: [...]', or an albumentations A.to_dict / A.save output")
    c.add_argument("--overwrite", action="store_true", help="replace a pipeline saved under that name")
    c.set_defaults(handler=_cmd_save)

    c = g.add_parser("delete", help="delete a saved pipeline")
    c.add_argument("name")
    c.set_defaults(handler=_cmd_delete)

    c = g.add_parser("preview", help="write N augmented versions of an image as PNG files")
    c.add_argument("name", help="a preset or a saved pipeline")
    c.add_argument("--image", required=True, help="the image file to augment")
    c.add_argument("--n", type=int, default=8, help="how many versions, 1-64 (default 8)")
    c.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same images (default 0)")
    c.add_argument("--out", default="augment-preview", metavar="DIR", help="output folder (default ./augment-preview)")
    c.add_argument("--size", type=int, default=None,
                   help="first letterbox the image to SIZE x SIZE, as training does (default: keep its size)")
    c.set_defaults(handler=_cmd_preview)

    c = g.add_parser("catalogue", help="the transforms a pipeline may use, with their parameters")
    c.add_argument("transform", nargs="?", help="show only this transform")
    c.add_argument("--json", action="store_true", help="print machine-readable JSON")
    c.set_defaults(handler=_cmd_catalogue)
