#!/usr/bin/env python3
"""Checks that every README code block preceded by `<!-- file: PATH -->` is exactly that file.

The README's examples are real, compiled sources; this keeps the text from drifting away from them.
`scripts/check-readme.py --fix` rewrites the blocks from the files.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
readme = (root / "README.md").read_text()
pattern = re.compile(r"(<!-- file: (\S+) -->\n```swift\n)(.*?)```", re.S)
if sys.argv[1:] == ["--fix"]:
    # Rewrites every quoted block from its file (after editing a quoted source on purpose).
    fixed = pattern.sub(lambda m: m.group(1) + (root / m.group(2)).read_text() + "```", readme)
    (root / "README.md").write_text(fixed)
    readme = fixed
blocks = [(m.group(2), m.group(3)) for m in pattern.finditer(readme)]
if not blocks:
    sys.exit("README.md has no <!-- file: --> code blocks")
failed = False
for path, code in blocks:
    actual = (root / path).read_text()
    if actual != code:
        print(f"README block for {path} differs from the file", file=sys.stderr)
        failed = True
    else:
        print(f"README block matches {path}")
sys.exit(1 if failed else 0)
