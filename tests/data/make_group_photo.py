"""Compose tests/data/group/three_people.jpg from committed LFW photos.

    .venv/bin/python tests/data/make_group_photo.py

No real group photo of these people can be committed, so this one is
composed (deterministic): 180x180 centre crops of Emma_Watson_0003 (scale
1.0), Calista_Flockhart_0003 (0.9) and Kamal_Kharrazi_0002 (0.8), left to
right on a 600x260 grey-blue canvas, 20 px apart, JPEG quality 92. The tests
enroll Emma Watson and Kamal Kharrazi from other photos; Calista Flockhart
is the stranger.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

DATA = Path(__file__).resolve().parent
OUT = DATA / "group" / "three_people.jpg"
#: (LFW photo, scale) left to right.
PEOPLE = (("Emma_Watson_0003", 1.0), ("Calista_Flockhart_0003", 0.9), ("Kamal_Kharrazi_0002", 0.8))
CROP = 180


def compose() -> Image.Image:
    canvas = Image.new("RGB", (600, 260), (96, 110, 128))
    x = 20
    for name, scale in PEOPLE:
        photo = Image.open(DATA / "lfw" / f"{name}.jpg").convert("RGB")
        left = (photo.width - CROP) // 2
        crop = photo.crop((left, left, left + CROP, left + CROP))
        side = round(CROP * scale)
        crop = crop.resize((side, side), Image.Resampling.LANCZOS)
        canvas.paste(crop, (x, (260 - side) // 2))
        x += side + 20
    return canvas


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    compose().save(OUT, quality=92)
