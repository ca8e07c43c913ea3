"""Contact sheets: labelled grids of photographs x styles."""
from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

# Contact-sheet layout, in pixels. A sheet with R rows and C columns (the original plus one per
# style variant), each cell a CELL x CELL box, is `sheet_size(R, C, CELL)`.
PAD = 8
LABEL_WIDTH = 112
HEADER_HEIGHT = 40
BACKGROUND = (255, 255, 255)
LETTERBOX = (238, 238, 238)
INK = (20, 20, 20)


def sheet_size(rows: int, cols: int, cell: int) -> tuple[int, int]:
    """(width, height) of a sheet with `rows` x `cols` cells of `cell` x `cell` pixels."""
    return (LABEL_WIDTH + PAD + cols * (cell + PAD), HEADER_HEIGHT + PAD + rows * (cell + PAD))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: the bitmap font
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _fit_cell(img: Image.Image, cell: int) -> Image.Image:
    """`img` scaled to fit a cell x cell box (aspect kept), centred on a grey letterbox."""
    scale = min(cell / img.width, cell / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    thumb = img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)
    box = Image.new("RGB", (cell, cell), LETTERBOX)
    box.paste(thumb, ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return box


def contact_sheet(
    cells: Sequence[Sequence[Image.Image | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[tuple[str, str]],
    cell: int,
) -> Image.Image:
    """A labelled grid; `cells[r][c]` is an image or None (left blank), `col_labels` two lines each."""
    rows, cols = len(row_labels), len(col_labels)
    sheet = Image.new("RGB", sheet_size(rows, cols, cell), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font, small = _font(14), _font(12)
    for c, (line1, line2) in enumerate(col_labels):
        x = LABEL_WIDTH + PAD + c * (cell + PAD)
        draw.text((x, 4), _fit_text(draw, line1, font, cell), fill=INK, font=font)
        draw.text((x, 22), _fit_text(draw, line2, small, cell), fill=INK, font=small)
    for r, label in enumerate(row_labels):
        y = HEADER_HEIGHT + PAD + r * (cell + PAD)
        draw.text((PAD, y + cell // 2 - 7), _fit_text(draw, label, font, LABEL_WIDTH - PAD), fill=INK,
                  font=font)
        for c in range(cols):
            img = cells[r][c] if c < len(cells[r]) else None
            if img is not None:
                sheet.paste(_fit_cell(img, cell), (LABEL_WIDTH + PAD + c * (cell + PAD), y))
    return sheet
