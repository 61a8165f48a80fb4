#!/usr/bin/env python3
"""Checks that every README code block preceded by `<!-- file: PATH -->` is exactly that file.

The README's examples are real, compiled sources; this keeps the text from drifting away from them.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
readme = (root / "README.md").read_text()
blocks = re.findall(r"<!-- file: (\S+) -->\n```swift\n(.*?)```", readme, re.S)
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
