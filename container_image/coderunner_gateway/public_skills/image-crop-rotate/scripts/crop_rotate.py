#!/usr/bin/env python3
"""Crop and/or rotate an image.

crop_rotate.py IN OUT [--crop L,T,R,B] [--rotate DEGREES] [--no-expand]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--crop", help="LEFT,TOP,RIGHT,BOTTOM in pixels")
    ap.add_argument("--rotate", type=float, default=0.0, help="degrees counter-clockwise")
    ap.add_argument("--no-expand", action="store_true", help="keep the original canvas size when rotating")
    args = ap.parse_args(argv)
    if not args.crop and not args.rotate:
        ap.error("nothing to do: give --crop and/or --rotate")
    from PIL import Image

    try:
        img: Image.Image = Image.open(args.input)
        img.load()
    except FileNotFoundError:
        print(f"no such file: {args.input}", file=sys.stderr)
        return 2
    if args.crop:
        try:
            box = tuple(int(v) for v in args.crop.split(","))
        except ValueError:
            ap.error("--crop takes four integers: LEFT,TOP,RIGHT,BOTTOM")
        if len(box) != 4 or not (0 <= box[0] < box[2] <= img.width and 0 <= box[1] < box[3] <= img.height):
            print(f"--crop {args.crop} is not a box inside the {img.width}x{img.height} image", file=sys.stderr)
            return 2
        img = img.crop(box)
    out_ext = Path(args.output).suffix.lower()
    if args.rotate:
        opaque = out_ext in (".jpg", ".jpeg", ".bmp")
        if not opaque and img.mode not in ("RGBA", "LA"):
            img = img.convert("RGBA")
        fill = (255, 255, 255) if opaque else None
        if opaque and img.mode != "RGB":
            img = img.convert("RGB")
        img = img.rotate(args.rotate, expand=not args.no_expand, resample=Image.Resampling.BICUBIC, fillcolor=fill)
    if out_ext in (".jpg", ".jpeg") and img.mode != "RGB":
        img = img.convert("RGB")
    img.save(args.output)
    print(f"wrote {args.output} ({img.width}x{img.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
