"""Tests that need a program (tesseract for OCR) skip where it is missing, saying how to install it, but fail under
CI (``CI=true``), where ``.ci/run`` installs it: a missing program must not pass there unnoticed."""

from __future__ import annotations

import shutil

import paths
import pytest


def test_a_missing_program_skips_outside_ci_and_fails_under_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(paths, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match=r"tesseract is not installed \(apt-get install tesseract-ocr\)"):
        paths.required_program("tesseract", "apt-get install tesseract-ocr")
    monkeypatch.setattr(paths, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="tesseract is not installed"):
        paths.required_program("tesseract", "apt-get install tesseract-ocr")


def test_a_present_program_is_found(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert paths.required_program("tesseract", "apt-get install tesseract-ocr") == "/usr/bin/tesseract"
