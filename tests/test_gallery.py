"""The anti-phishing security image gallery: its catalogue, its SVG files and their licence."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from oficina.antiphishing.gallery import (
    GALLERY,
    IMAGES_BY_ID,
    GalleryImage,
    get_image,
    is_valid_image_id,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
STATIC_ROOT = REPO_ROOT / "static"
GALLERY_DIR = STATIC_ROOT / "antiphishing" / "gallery"
SVG_NS = "{http://www.w3.org/2000/svg}"
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SPANISH_NAME = re.compile(r"^[A-ZÁÉÍÓÚÑÜ][a-záéíóúñü]*(?: [a-záéíóúñü]+)*$")

IDS = [image.id for image in GALLERY]


def _load_extract_script() -> ModuleType:
    path = REPO_ROOT / "tools" / "extract_gallery.py"
    spec = importlib.util.spec_from_file_location("extract_gallery", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the catalogue -------------------------------------------------------------------------------


def test_the_gallery_offers_at_least_24_images():
    assert len(GALLERY) >= 24


def test_image_ids_are_unique():
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("image_id", IDS)
def test_each_image_id_is_a_short_lowercase_ascii_slug(image_id):
    assert SLUG.fullmatch(image_id)
    assert image_id.isascii()
    assert len(image_id) <= 40  # fits Member.security_image


def test_image_names_are_unique_ignoring_case():
    names = [image.name.casefold() for image in GALLERY]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("image", GALLERY, ids=IDS)
def test_each_image_name_is_a_capitalised_spanish_phrase(image):
    assert image.name.strip() == image.name
    assert SPANISH_NAME.fullmatch(image.name), image.name


def test_accented_names_keep_their_accents_while_ids_drop_them():
    assert IMAGES_BY_ID["buho"].name == "Búho"
    assert IMAGES_BY_ID["pina"].name == "Piña"
    assert IMAGES_BY_ID["girasol"].name == "Girasol"


def test_images_by_id_indexes_every_image_of_the_gallery_and_nothing_else():
    assert list(IMAGES_BY_ID) == IDS
    assert all(IMAGES_BY_ID[image.id] is image for image in GALLERY)


def test_static_path_points_into_the_gallery_folder():
    assert GalleryImage("gato", "Gato").static_path == "antiphishing/gallery/gato.svg"


def test_gallery_images_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GALLERY[0].id = "otro"  # type: ignore[misc]


# --- looking an image up -----------------------------------------------------------------------


@pytest.mark.parametrize("image_id", IDS)
def test_get_image_returns_the_image_for_each_known_id(image_id):
    image = get_image(image_id)
    assert image is not None
    assert image.id == image_id
    assert is_valid_image_id(image_id)


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        "perico",
        "GATO",
        "Gato",
        " gato",
        "gato ",
        "gato.svg",
        "../etc/passwd",
        "antiphishing/gallery/gato",
        "búho",
        "gato\x00",
        None,
        0,
        b"gato",
        ["gato"],
    ],
)
def test_get_image_and_is_valid_image_id_reject_anything_but_an_exact_known_id(bad_id):
    assert get_image(bad_id) is None
    assert is_valid_image_id(bad_id) is False


def test_a_str_subclass_is_not_taken_for_a_gallery_id():
    class Sneaky(str):
        pass

    assert is_valid_image_id(Sneaky("gato")) is False


# --- the SVG files -----------------------------------------------------------------------------


@pytest.mark.parametrize("image", GALLERY, ids=IDS)
def test_every_image_has_its_svg_file_in_static(image):
    assert (STATIC_ROOT / image.static_path).is_file()


@pytest.mark.parametrize("image", GALLERY, ids=IDS)
def test_every_svg_is_a_well_formed_self_contained_svg_without_scripts(image):
    text = (STATIC_ROOT / image.static_path).read_text(encoding="utf-8")
    root = ET.fromstring(text)
    assert root.tag == f"{SVG_NS}svg"
    assert re.fullmatch(r"0 0 \d+ \d+", root.attrib["viewBox"])
    for element in root.iter():
        tag = element.tag.rpartition("}")[2]
        assert tag not in {"script", "foreignObject", "image", "iframe", "a", "style"}, tag
        for attr, value in element.attrib.items():
            local = attr.rpartition("}")[2]
            assert not local.lower().startswith("on"), attr
            if local == "href":
                assert not value.lower().startswith(("http:", "https:", "//", "javascript:", "data:")), value
                assert value.startswith("#"), value
    lowered = text.lower()
    assert "<script" not in lowered
    assert "http://" not in lowered.replace("http://www.w3.org/", "")
    assert "https://" not in lowered


def test_the_gallery_folder_holds_no_svg_that_is_not_in_the_gallery():
    on_disk = {path.stem for path in GALLERY_DIR.glob("*.svg")}
    assert on_disk == set(IDS)


def test_the_extraction_script_lists_the_same_ids_in_the_same_order():
    script = _load_extract_script()
    assert [gallery_id for gallery_id, _ in script.SOURCES] == IDS


# --- licence and attribution -------------------------------------------------------------------


def test_the_licence_ships_with_the_images_and_is_mit():
    licence = (GALLERY_DIR / "LICENSE.txt").read_text(encoding="utf-8")
    assert "MIT License" in licence
    assert "Copyright (c) Microsoft Corporation" in licence
    assert "Permission is hereby granted, free of charge" in licence


def test_the_attribution_names_the_source_and_lists_every_file():
    attribution = (GALLERY_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "Fluent UI Emoji" in attribution
    assert "@iconify-json/fluent-emoji-flat" in attribution
    assert "MIT" in attribution
    for image_id in IDS:
        assert f"`{image_id}.svg`" in attribution


def test_an_images_url_is_what_static_gives_and_follows_a_change_of_static_url(settings):
    from django.templatetags.static import static

    image = GalleryImage("gato", "Gato")
    assert image.url == static(image.static_path)
    settings.STATIC_URL = "/otros-estaticos/"
    assert image.url == static(image.static_path) and image.url.startswith("/otros-estaticos/")
