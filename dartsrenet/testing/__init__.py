"""Test helpers shipped with the library: the straightforward oracle of the recurrent
cells (:mod:`dartsrenet.testing.reference_cells`), imported by the tests and the
benchmarks alike. The oracle is written independently of the library's maths."""
