"""tlcore.augment: catalogue, presets, validation, albumentations serialization, previews,
workspace storage, and the ``python -m tlcore augment`` commands."""

from __future__ import annotations

import json

import albumentations as A
import numpy as np
import pytest
import yaml
from PIL import Image

from tlcore import augment as au
from tlcore.cli import main
from tlcore.errors import AugmentationError, ConfigError, NotFoundError
from tlcore.workspace import Workspace


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


def _extreme(ps: au.ParamSchema, end: str):
    """The smallest or largest value (or widest range) a parameter allows."""
    if ps.kind in ("bool", "choice"):
        return ps.default
    cast = int if ps.kind in ("int", "int_range") else float
    if ps.kind.endswith("_range"):
        return [cast(ps.min), cast(ps.min)] if end == "min" else [cast(ps.min), cast(ps.max)]
    return cast(ps.min if end == "min" else ps.max)


# --------------------------------------------------------------- catalogue
def test_catalogue_is_curated_and_grouped():
    assert len(au.CATALOGUE) >= 18
    groups = {t.group for t in au.CATALOGUE.values()}
    assert groups == set(au.GROUPS)
    for must in ("HorizontalFlip", "Affine", "RandomResizedCrop", "RandomBrightnessContrast", "HueSaturationValue",
                 "GaussianBlur", "GaussNoise", "ImageCompression", "CoarseDropout", "GridDropout", "Erasing"):
        assert must in au.CATALOGUE
    assert "Lambda" not in au.CATALOGUE
    assert au.CATALOGUE["Affine"].param("rotate").default == (-15.0, 15.0)
    assert (au.CATALOGUE["Affine"].param("rotate").min, au.CATALOGUE["Affine"].param("rotate").max) == (-180, 180)


@pytest.mark.parametrize("name", list(au.CATALOGUE))
def test_every_transform_builds_and_runs(name, image):
    info = au.CATALOGUE[name]
    assert info.description and info.params[-1].name == "p"
    for ps in info.params:
        assert ps.kind in ("float", "int", "bool", "float_range", "int_range", "choice")
        assert ps.help, f"{name}.{ps.name} has no help"
        if ps.kind == "choice":
            assert ps.default in ps.choices
        elif ps.kind != "bool":
            assert ps.min is not None and ps.max is not None and ps.step
    # Defaults, the extremes of every parameter, and every choice are accepted by albumentations too.
    variants = [{}, {ps.name: _extreme(ps, "min") for ps in info.params}, {ps.name: _extreme(ps, "max") for ps in info.params}]
    variants += [{ps.name: c} for ps in info.params if ps.kind == "choice" for c in ps.choices]
    for params in variants:
        spec = au.AugmentSpec(steps=[au.StepSpec(name, {**params, "p": 1.0})])
        out = au.preview(image, spec, n=2, seed=0)
        assert all(o.shape == image.shape and o.dtype == np.uint8 for o in out)


def test_step_defaults_are_filled_in():
    step = au.StepSpec("Affine", {"rotate": [-10, 10]})
    assert step.params["rotate"] == (-10.0, 10.0)
    assert step.params["scale"] == au.CATALOGUE["Affine"].param("scale").default
    assert step == au.StepSpec("Affine", dict(step.params))
    assert hash(step) == hash(au.StepSpec("Affine", dict(step.params)))


# ----------------------------------------------------------------- presets
def test_presets():
    assert list(au.PRESETS) == ["none", "light", "medium", "heavy"]
    assert au.preset_spec("none").steps == ()
    light, medium, heavy = (set(au.preset_spec(n).names) for n in ("light", "medium", "heavy"))
    assert light == {"HorizontalFlip", "RandomBrightnessContrast"}
    assert light < medium and {"Affine", "HueSaturationValue", "GaussianBlur"} <= medium
    assert {"CoarseDropout", "GaussNoise", "Perspective", "Affine"} <= heavy
    m_rot = dict(au.PRESETS["medium"])["Affine"]["rotate"]
    h_rot = dict(au.PRESETS["heavy"])["Affine"]["rotate"]
    assert h_rot[1] > m_rot[1]


@pytest.mark.parametrize("name", list(au.PRESETS))
@pytest.mark.parametrize("shape", [(64, 64, 3), (48, 80, 3)])
def test_every_preset_runs_and_keeps_the_shape(name, shape):
    img = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    pipe = au.build_pipeline(au.get_spec(None, name), image_size=shape[:2], seed=0)
    for _ in range(5):
        out = pipe(image=img)["image"]
        assert out.shape == shape and out.dtype == np.uint8


def test_build_pipeline_sets_crop_size_from_image_size():
    pipe = au.build_pipeline(au.preset_spec("heavy"), image_size=(32, 40), seed=3)
    crop = next(t for t in pipe.transforms if isinstance(t, A.RandomResizedCrop))
    assert tuple(crop.size) == (32, 40)
    default = au.build_pipeline(au.preset_spec("heavy"))
    assert tuple(next(t for t in default.transforms if isinstance(t, A.RandomResizedCrop)).size) == au.DEFAULT_IMAGE_SIZE
    with pytest.raises(AugmentationError, match="image_size"):
        au.build_pipeline(au.preset_spec("heavy"), image_size=(0, 32))


# -------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "steps, expected",
    [
        ([("Foo", {})], ["Step 1", "unknown transform", "'Foo'", "HorizontalFlip", "Affine"]),
        ([("ShiftScaleRotate", {})], ["unknown transform", "Use Affine instead"]),
        ([("Lambda", {})], ["unknown transform", "'Lambda'"]),
        ([("HorizontalFlip", {}), ("Affine", {"rotat": [1, 2]})],
         ["Step 2 (Affine)", "unknown parameter 'rotat'", "rotat=[1, 2]", "rotate, scale"]),
        ([("Affine", {"rotate": "15"})], ["Step 1 (Affine)", "'rotate'", "[low, high] pair", "rotate='15'"]),
        ([("Affine", {"rotate": [-200, 15]})], ["'rotate'", "out of range [-180, 180]", "rotate=[-200, 15]"]),
        ([("Affine", {"rotate": [15, -15]})], ["'rotate'", "low end above its high end", "rotate=[15, -15]"]),
        ([("HorizontalFlip", {"p": 1.5})], ["Step 1 (HorizontalFlip)", "'p'", "[0, 1]", "p=1.5"]),
        ([("HorizontalFlip", {"p": -0.1})], ["'p'", "p=-0.1"]),
        ([("HorizontalFlip", {"p": "often"})], ["'p'", "p='often'"]),
        ([("GridDistortion", {"num_steps": 2.5})], ["'num_steps'", "must be an integer", "num_steps=2.5"]),
        ([("GridDistortion", {"num_steps": 99})], ["'num_steps'", "out of range [1, 15]", "num_steps=99"]),
        ([("GaussianBlur", {"blur_limit": [4, 7]})], ["'blur_limit'", "odd", "blur_limit=[4, 7]"]),
        ([("GaussianBlur", {"blur_limit": [3.0, 7]})], ["'blur_limit'", "pair of integers"]),
        ([("Equalize", {"by_channels": "yes"})], ["'by_channels'", "true or false", "by_channels='yes'"]),
        ([("ToGray", {"method": "magic"})], ["'method'", "not one of its choices", "method='magic'", "weighted_average"]),
        ([{"name": "Affine", "parms": {}}], ["Step 1", "'name' and 'params'"]),
        ([("Affine", [1, 2])], ["Step 1 (Affine)", "parameters must be a mapping"]),
    ],
)
def test_validation_errors_are_informative(steps, expected):
    with pytest.raises(AugmentationError) as info:
        au.AugmentSpec(steps=steps)
    text = str(info.value)
    for piece in expected:
        assert piece in text, f"{piece!r} not in {text!r}"


def test_steps_must_be_a_list():
    with pytest.raises(AugmentationError, match="list"):
        au.AugmentSpec(steps="HorizontalFlip")
    with pytest.raises(AugmentationError, match="Unknown AugmentSpec field"):
        au.AugmentSpec.from_dict({"steps": [], "extra": 1})


def test_spec_yaml_round_trip():
    spec = au.preset_spec("heavy")
    assert au.AugmentSpec.from_yaml(spec.to_yaml()) == spec
    assert au.AugmentSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert au.AugmentSpec(steps=["HorizontalFlip", ("VerticalFlip", {"p": 0.2})]).names == ["HorizontalFlip", "VerticalFlip"]


# ----------------------------------------------------------- serialization
def _same_outputs(a, b, img, seed=7, n=6) -> bool:
    a.set_random_seed(seed)
    b.set_random_seed(seed)
    return all(np.array_equal(a(image=img)["image"], b(image=img)["image"]) for _ in range(n))


@pytest.mark.parametrize("name", ["light", "medium", "heavy"])
def test_to_dict_from_dict_round_trip_gives_identical_outputs(name, image):
    spec = au.preset_spec(name)
    pipe = au.build_pipeline(spec, image_size=image.shape[:2])
    d = au.spec_to_albu_dict(spec, image_size=image.shape[:2])
    assert d == au.pipeline_to_dict(pipe) and d["transform"]["__class_fullname__"] == "Compose"
    assert _same_outputs(pipe, au.pipeline_from_dict(d), image)
    assert _same_outputs(pipe, au.pipeline_from_dict(json.loads(au.pipeline_to_json(pipe))), image)
    assert _same_outputs(pipe, au.pipeline_from_dict(yaml.safe_load(au.pipeline_to_yaml(pipe))), image)
    assert _same_outputs(pipe, A.from_dict(d), image)  # plain albumentations reads it too
    assert au.spec_from_albu_dict(d) == spec


def test_albumentations_save_output_is_accepted(tmp_path, image):
    pipe = au.build_pipeline(au.preset_spec("medium"))
    A.save(pipe, str(tmp_path / "p.json"))
    A.save(pipe, str(tmp_path / "p.yaml"), data_format="yaml")
    for f in ("p.json", "p.yaml"):
        assert au.parse_spec_text((tmp_path / f).read_text()) == au.preset_spec("medium")


@pytest.mark.parametrize(
    "transform, expected",
    [
        ({"__class_fullname__": "Lambda", "name": "evil", "p": 1.0}, "'Lambda'"),
        ({"__class_fullname__": "os.system", "p": 1.0}, "'os.system'"),
        ({"__class_fullname__": "NotATransform", "p": 1.0}, "'NotATransform'"),
        ({"__class_fullname__": "OneOf", "p": 1.0,
          "transforms": [{"__class_fullname__": "Lambda", "name": "x", "p": 1.0}]}, "'Lambda'"),
    ],
)
def test_loading_refuses_unknown_transforms_and_lambdas(transform, expected):
    d = {"__version__": A.__version__,
         "transform": {"__class_fullname__": "Compose", "p": 1.0, "transforms": [transform]}}
    with pytest.raises(AugmentationError) as info:
        au.pipeline_from_dict(d)
    assert expected in str(info.value) and "not an allowed transform" in str(info.value)
    with pytest.raises(AugmentationError):
        au.spec_from_albu_dict(d)


def test_loading_wraps_albumentations_errors():
    d = {"transform": {"__class_fullname__": "Compose", "p": 1.0,
                       "transforms": [{"__class_fullname__": "Affine", "p": 1.0, "rotate": "x"}]}}
    with pytest.raises(AugmentationError, match="rotate"):
        au.pipeline_from_dict(d)
    with pytest.raises(AugmentationError, match="not an albumentations pipeline"):
        au.pipeline_from_dict({"steps": []})


def test_nested_compositions_load_but_are_not_editable(image):
    pipe = A.Compose([A.OneOf([A.HorizontalFlip(p=1), A.VerticalFlip(p=1)], p=1)])
    loaded = au.pipeline_from_dict(A.to_dict(pipe))
    assert loaded(image=image)["image"].shape == image.shape
    with pytest.raises(AugmentationError, match="flat pipelines"):
        au.spec_from_albu_dict(A.to_dict(pipe))


def test_spec_from_albu_dict_refuses_arguments_it_would_lose():
    d = A.to_dict(A.Compose([A.Affine(rotate=(-5, 5), interpolation=0, p=1)]))
    with pytest.raises(AugmentationError) as info:
        au.spec_from_albu_dict(d)
    assert "interpolation" in str(info.value) and "Step 1 (Affine)" in str(info.value)


def test_spec_from_foreign_albu_dicts(image):
    # Written by albumentations itself, with a parameter set the catalogue's way.
    pipe = A.Compose([A.Affine(rotate=(-5, -5), border_mode=4, p=1)])  # fixed angle: no randomness left
    spec = au.spec_from_albu_dict(A.to_dict(pipe))
    assert spec.steps[0].params["rotate"] == (-5.0, -5.0) and spec.steps[0].params["translate_percent"] == (0.0, 0.0)
    assert _same_outputs(pipe, au.build_pipeline(spec, image_size=image.shape[:2]), image)
    # Written by hand: missing keys mean albumentations' defaults, not the catalogue's.
    hand = {"transform": {"__class_fullname__": "Compose", "transforms": [
        {"__class_fullname__": "HorizontalFlip"}, {"__class_fullname__": "Affine", "rotate": [-5, 5], "p": 1.0}]}}
    spec = au.spec_from_albu_dict(hand)
    assert spec.steps[0].params["p"] == 0.5
    assert spec.steps[1].params["scale"] == (1.0, 1.0) and spec.steps[1].params["border_mode"] == "constant"


# ----------------------------------------------------------------- preview
def test_preview_is_reproducible(image):
    spec = au.preset_spec("heavy")
    a = au.preview(image, spec, n=8, seed=0)
    b = au.preview(image, spec, n=8, seed=0)
    c = au.preview(image, spec, n=8, seed=1)
    assert len(a) == 8 and all(x.shape == image.shape for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    assert len({x.tobytes() for x in a}) > 1  # the versions differ from each other


def test_preview_with_a_pipeline_reseeds_it(image):
    pipe = au.build_pipeline(au.preset_spec("medium"), image_size=image.shape[:2])
    a = au.preview(image, pipe, n=4, seed=5)
    b = au.preview(image, pipe, n=4, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(np.array_equal(x, y) for x, y in zip(a, au.preview(image, au.preset_spec("medium"), n=4, seed=5)))


def test_preview_keeps_any_input_size_and_converts_gray():
    gray = np.random.default_rng(2).integers(0, 256, size=(37, 91), dtype=np.uint8)
    out = au.preview(gray, au.preset_spec("heavy"), n=3, seed=0)
    assert all(o.shape == (37, 91, 3) for o in out)
    rgba = np.zeros((20, 30, 4), np.uint8)
    assert au.preview(rgba, au.preset_spec("none"), n=1, seed=0)[0].shape == (20, 30, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n": 0}, "n must be"), ({"n": 65}, "n must be"), ({"seed": -1}, "seed"),
     ({"image": np.zeros((8, 8, 3), np.float32)}, "uint8"), ({"spec_or_pipeline": "heavy"}, "AugmentSpec")],
)
def test_preview_refuses_bad_arguments(kwargs, match, image):
    args = {"image": image, "spec_or_pipeline": au.preset_spec("light"), "n": 2, "seed": 0, **kwargs}
    with pytest.raises(AugmentationError, match=match):
        au.preview(**args)


# --------------------------------------------------------------- workspace
def test_save_load_list_delete(ws, image):
    assert au.list_pipelines(ws) == []
    spec = au.AugmentSpec(steps=[("HorizontalFlip", {"p": 0.5}), ("Affine", {"rotate": [-20, 20], "p": 0.9})])
    path = au.save_pipeline(ws, "mine", spec)
    assert path == ws.augmentations_dir / "mine.yaml" and path.is_file()
    assert not list(path.parent.glob(".*.tmp"))  # written atomically, nothing left behind
    doc = yaml.safe_load(path.read_text())
    assert doc["spec"] == spec.to_dict()
    # the file's albumentations part is albumentations' own serialization
    assert _same_outputs(au.build_pipeline(spec), A.from_dict(doc["albumentations"]), image)
    assert au.load_pipeline(ws, "mine") == spec
    assert au.get_spec(ws, "mine") == spec
    au.save_pipeline(ws, "another", au.preset_spec("heavy"))
    assert au.list_pipelines(ws) == ["another", "mine"]
    assert au.pipeline_names(ws) == ["none", "light", "medium", "heavy", "another", "mine"]
    au.delete_pipeline(ws, "mine")
    assert au.list_pipelines(ws) == ["another"]
    with pytest.raises(NotFoundError) as info:
        au.load_pipeline(ws, "mine")
    assert "another" in str(info.value) and "'mine'" in str(info.value)
    with pytest.raises(NotFoundError):
        au.delete_pipeline(ws, "mine")


def test_save_refuses_taken_preset_and_invalid_names(ws):
    spec = au.preset_spec("light")
    au.save_pipeline(ws, "mine", spec)
    with pytest.raises(ConfigError, match="already saved"):
        au.save_pipeline(ws, "mine", au.preset_spec("heavy"))
    au.save_pipeline(ws, "mine", au.preset_spec("heavy"), overwrite=True)
    assert au.load_pipeline(ws, "mine") == au.preset_spec("heavy")
    for name in ("light", "Heavy", "none"):
        with pytest.raises(ConfigError, match="preset"):
            au.save_pipeline(ws, name, spec)
    for name in ("", "../evil", "a b", "x" * 65, ".hidden"):
        with pytest.raises(ConfigError, match="Invalid pipeline name"):
            au.save_pipeline(ws, name, spec)
    with pytest.raises(ConfigError, match="cannot be deleted"):
        au.delete_pipeline(ws, "light")


def test_presets_win_and_damaged_files_are_reported(ws):
    folder = ws.augmentations_dir
    (folder / "light.yaml").write_text("steps: []\n")  # written by hand; cannot shadow the preset
    assert au.get_spec(ws, "light") == au.preset_spec("light")
    assert au.list_pipelines(ws) == []
    (folder / "broken.yaml").write_text("steps: [{name: Foo}]\n")
    (folder / "garbage.yaml").write_text("transforms: [\n")
    (folder / "other.yaml").write_text("transforms: []\n")
    (folder / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xbb\xff")
    for name, match in (("broken", "unknown transform"), ("garbage", "not valid YAML"), ("other", "no augmentation pipeline"),
                        ("binary", "not UTF-8 text")):
        with pytest.raises(AugmentationError) as info:
            au.load_pipeline(ws, name)
        assert match in str(info.value) and f"'{name}'" in str(info.value) and str(folder / f"{name}.yaml") in str(info.value)
    # a plain albumentations file dropped into the folder is understood
    (folder / "plain.yaml").write_text(yaml.safe_dump(au.spec_to_albu_dict(au.preset_spec("medium"))))
    assert au.load_pipeline(ws, "plain") == au.preset_spec("medium")
    with pytest.raises(NotFoundError, match="Presets: none, light"):
        au.get_spec(None, "plain")


# --------------------------------------------------------------------- CLI
def _cli(tmp_path, *args: str) -> int:
    return main(["--workspace", str(tmp_path / "ws"), "augment", *args])


def test_cli_list_show_catalogue(tmp_path, capsys):
    assert _cli(tmp_path, "list") == 0
    out = capsys.readouterr().out
    assert all(n in out for n in au.PRESETS) and "No saved pipelines yet" in out
    assert _cli(tmp_path, "list", "--json") == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == list(au.PRESETS)

    assert _cli(tmp_path, "show", "heavy") == 0
    d = yaml.safe_load(capsys.readouterr().out)
    assert d["transform"]["transforms"][0]["size"] == [224, 224]
    assert au.spec_from_albu_dict(d) == au.preset_spec("heavy")
    assert _cli(tmp_path, "show", "medium", "--format", "json", "--size", "96") == 0
    assert au.pipeline_from_dict(json.loads(capsys.readouterr().out))
    assert _cli(tmp_path, "show", "light", "--spec") == 0
    assert au.AugmentSpec.from_yaml(capsys.readouterr().out) == au.preset_spec("light")
    assert _cli(tmp_path, "show", "nope") == 2
    assert "No augmentation pipeline is saved under that name" in capsys.readouterr().err

    assert _cli(tmp_path, "catalogue") == 0
    out = capsys.readouterr().out
    assert "Geometric:" in out and "Affine" in out and "rotate" in out and "CoarseDropout" in out
    assert _cli(tmp_path, "catalogue", "Affine", "--json") == 0
    [affine] = json.loads(capsys.readouterr().out)
    rotate = next(p for p in affine["params"] if p["name"] == "rotate")
    assert (rotate["kind"], rotate["default"], rotate["min"], rotate["max"]) == ("float_range", [-15.0, 15.0], -180.0, 180.0)
    assert _cli(tmp_path, "catalogue", "Nope") == 2


def test_cli_save_delete(tmp_path, capsys):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("steps:\n  - {name: HorizontalFlip, params: {p: 0.5}}\n  - {name: Affine, params: {rotate: [-20, 20]}}\n")
    assert _cli(tmp_path, "save", "mine", "--from-file", str(spec_file)) == 0
    assert "Saved 'mine'" in capsys.readouterr().out
    ws = Workspace(tmp_path / "ws")
    assert au.load_pipeline(ws, "mine").names == ["HorizontalFlip", "Affine"]
    assert _cli(tmp_path, "save", "mine", "--from-file", str(spec_file)) == 2
    assert "already saved" in capsys.readouterr().err
    # an albumentations JSON file works as the source too
    albu_file = tmp_path / "heavy.json"
    albu_file.write_text(au.pipeline_to_json(au.build_pipeline(au.preset_spec("heavy"))))
    assert _cli(tmp_path, "save", "mine", "--from-file", str(albu_file), "--overwrite") == 0
    assert au.load_pipeline(ws, "mine") == au.preset_spec("heavy")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [{name: Affine, params: {rotate: [30, -30]}}]\n")
    assert _cli(tmp_path, "save", "bad", "--from-file", str(bad)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "low end above its high end" in err and "Traceback" not in err
    assert _cli(tmp_path, "save", "x", "--from-file", str(tmp_path / "missing.yaml")) == 2
    assert "Cannot read the spec file" in capsys.readouterr().err
    assert _cli(tmp_path, "save", "heavy", "--from-file", str(spec_file)) == 2
    assert _cli(tmp_path, "list") == 0
    assert "mine" in capsys.readouterr().out
    assert _cli(tmp_path, "delete", "mine") == 0
    assert au.list_pipelines(ws) == []


def test_cli_preview_writes_pngs(tmp_path, capsys):
    src = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "out"
    assert _cli(tmp_path, "preview", "heavy", "--image", str(src), "--n", "3", "--seed", "4", "--out", str(out)) == 0
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"heavy-seed4-{i:02d}.png" for i in range(3)]
    arrays = [np.asarray(Image.open(f)) for f in files]
    assert all(a.shape == (40, 60, 3) for a in arrays)
    expected = au.preview(np.asarray(Image.open(src).convert("RGB")), au.preset_spec("heavy"), n=3, seed=4)
    assert all(np.array_equal(a, e) for a, e in zip(arrays, expected))
    assert _cli(tmp_path, "preview", "light", "--image", str(src), "--n", "2", "--size", "32", "--out", str(out)) == 0
    assert np.asarray(Image.open(out / "light-seed0-00.png")).shape == (32, 32, 3)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert _cli(tmp_path, "preview", "light", "--image", str(tmp_path / "broken.png"), "--out", str(out)) == 2
    assert "error:" in capsys.readouterr().err


def test_border_modes_are_opencvs_values_written_out():
    """``tlcore.augment`` writes OpenCV's border constants out so that importing it does not load OpenCV."""
    import cv2

    schemas = [p for info in au.CATALOGUE.values() for p in info.params if p.name == "border_mode"]
    assert schemas
    for schema in schemas:
        assert dict(schema.albu_values) == {"reflect_101": cv2.BORDER_REFLECT_101, "reflect": cv2.BORDER_REFLECT,
                                            "replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}
