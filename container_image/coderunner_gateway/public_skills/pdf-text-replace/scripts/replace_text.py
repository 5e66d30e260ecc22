#!/usr/bin/env python3
"""Replace text in a PDF's text-showing operators; write a new PDF.

replace_text.py IN.pdf OUT.pdf --find OLD --replace NEW [--find ... --replace ...] [--pages 1,3]
"""

from __future__ import annotations

import argparse
import sys


def replace_in(value, pairs, counter):
    from pypdf.generic import ByteStringObject, TextStringObject

    if isinstance(value, (TextStringObject, ByteStringObject)):
        raw = bytes(value.original_bytes if isinstance(value, TextStringObject) else value)
        text = raw.decode("latin-1")
        for old, new in pairs:
            n = text.count(old)
            if n:
                counter[0] += n
                text = text.replace(old, new)
        return ByteStringObject(text.encode("latin-1", "replace"))
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--find", action="append", required=True)
    ap.add_argument("--replace", action="append", required=True)
    ap.add_argument("--pages", help="1-based page numbers, comma separated (default: all)")
    args = ap.parse_args(argv)
    if len(args.find) != len(args.replace):
        ap.error("give one --replace for each --find")
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, ContentStream

    try:
        reader = PdfReader(args.input)
    except FileNotFoundError:
        print(f"no such file: {args.input}", file=sys.stderr)
        return 2
    pairs = list(zip(args.find, args.replace, strict=True))
    wanted = {int(p) for p in args.pages.split(",")} if args.pages else None
    writer = PdfWriter(clone_from=reader)
    total = 0
    for number, page in enumerate(writer.pages, 1):
        if wanted is not None and number not in wanted:
            continue
        contents = page.get_contents()
        if contents is None:
            continue
        stream = ContentStream(contents, writer)
        counter = [0]
        for operands, operator in stream.operations:
            if operator in (b"Tj", b"'", b'"'):
                operands[-1] = replace_in(operands[-1], pairs, counter)
            elif operator == b"TJ" and operands and isinstance(operands[0], ArrayObject):
                operands[0] = ArrayObject(replace_in(v, pairs, counter) for v in operands[0])
        if counter[0]:
            page.replace_contents(stream)
            print(f"page {number}: {counter[0]} replacement(s)")
        total += counter[0]
    if total == 0:
        print("no replacements: the text was not found as plain strings in the PDF's text operators", file=sys.stderr)
        return 1
    with open(args.output, "wb") as f:
        writer.write(f)
    print(f"wrote {args.output} ({total} replacement(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
