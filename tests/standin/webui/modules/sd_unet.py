"""STAND-IN of ``modules/sd_unet.py`` of WebUI 1.10.1: no alternative UNet is active (``current_unet = None``);
a test may assign an object here to simulate e.g. a TensorRT UNet."""

current_unet = None
current_unet_option = None
unet_options = []


def list_unets():
    unet_options.clear()


def apply_unet(option=None):
    pass
