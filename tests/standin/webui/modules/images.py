"""STAND-IN of the parts of ``modules/images.py`` of WebUI 1.10.1 that processing uses: ``image_grid`` (rows ~
sqrt(n), as with the default ``n_rows = -1``), ``GridAnnotation``, ``flatten``, ``resize_image`` (plain resize) and a
``save_image`` that writes nothing."""

import math

from PIL import Image


class GridAnnotation:
    def __init__(self, text='', is_active=True):
        self.text = text
        self.is_active = is_active
        self.size = None


def image_grid(imgs, batch_size=1, rows=None):
    if rows is None:
        rows = min(len(imgs), max(1, round(math.sqrt(len(imgs)))))
    cols = math.ceil(len(imgs) / rows)

    from modules import script_callbacks

    params = script_callbacks.ImageGridLoopParams(imgs, cols, rows)
    script_callbacks.image_grid_callback(params)

    w, h = max(i.width for i in params.imgs), max(i.height for i in params.imgs)
    grid = Image.new('RGB', size=(params.cols * w, params.rows * h), color='black')
    for i, img in enumerate(params.imgs):
        grid.paste(img, box=(i % params.cols * w, i // params.cols * h))
    return grid


def flatten(img, bgcolor):
    if img.mode == "RGBA":
        background = Image.new('RGBA', img.size, bgcolor)
        background.paste(img, mask=img)
        img = background
    return img.convert('RGB')


def resize_image(resize_mode, im, width, height, upscaler_name=None):
    return im.resize((width, height), Image.LANCZOS)


def save_image(image, path, basename, seed=None, prompt=None, extension='png', info=None, *args, **kwargs):
    return None, None
