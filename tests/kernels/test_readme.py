"""The README's table of tested kernels is the one matrix.py declares."""

from tests.kernels import readme
from tests.kernels.matrix import MATRIX, expected_hook


def test_readme_kernel_matrix_block_is_current():
    text = readme.README.read_text()
    assert readme.rewrite(text) == text, "stale: run python3 -m tests.kernels.readme"


def test_the_hook_rule_is_tcx_from_6_6():
    assert [expected_hook(r) for r in ("5.15.0-91-generic", "6.1.0-41-amd64",
                                       "6.5.0-1", "6.6.0", "6.12.57+deb13-amd64",
                                       "6.18.44-fc")] == \
        ["clsact", "clsact", "clsact", "tcx", "tcx", "tcx"]
    assert {k.name for k in MATRIX if k.vm and expected_hook(k.series + "0") == "clsact"}, \
        "the matrix must keep a kernel without tcx (clsact path)"
    assert {k.name for k in MATRIX if k.vm and expected_hook(k.series + "0") == "tcx"}, \
        "the matrix must keep a kernel with tcx"
