"""The paymesh image, built once per session for every test that takes `image`
(tests/deploy/image_build.py). Modules that use it are in xdist group "image", so one
worker builds it and no other worker removes it while a test runs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from image_build import built_image


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from built_image(tmp_path_factory)
