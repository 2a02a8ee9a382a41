"""STAND-IN of ``modules/shared.py`` of WebUI 1.10.1 (with ``shared_options.py``, ``shared_cmd_options.py``,
``shared_total_tqdm.py`` folded in).

``opts`` holds the WebUI defaults of the settings the sampling/processing path reads; ``cmd_opts`` is a CPU,
``--no-half`` command line; ``state`` is a ``shared_state.State``; ``sd_model`` is set by the test harness
(``tests/standin/webui/harness.py``); ``total_tqdm`` only counts. Settings that only affect UI/saving are absent
(``opts`` then raises ``AttributeError`` like the real one for unknown keys).
"""

from __future__ import annotations

import argparse
import sys

from modules import devices, options, paths, shared_state
from modules.options import OptionHTML, OptionInfo, options_section  # noqa: F401

cmd_opts = argparse.Namespace(
    lowvram=False, medvram=False, medvram_sdxl=False, lowram=False, no_half=True, no_half_vae=True,
    upcast_sampling=False, precision="full", api=False, nowebui=False, freeze_settings=False,
    freeze_settings_in_sections=None, freeze_specific_settings=None, hide_ui_dir_config=False,
    no_prompt_history=False, disable_nan_check=False, embeddings_dir=paths.data_path + "/embeddings-absent",
    disable_console_progressbars=True, ui_settings_file="config.json", styles_file=[], use_cpu=["all"],
    disable_extra_extensions=False, disable_all_extensions=False, skip_install=True, xformers=False,
    opt_sdp_attention=False, always_batch_cond_uncond=False, data_dir=paths.data_path,
)

batch_cond_uncond = True
parallel_processing_allowed = True
demo = None
device = devices.device
xformers_available = False
face_restorers = []
sd_upscalers = []
settings_components = None
tab_names = []
progress_print_out = sys.stdout

latent_upscale_default_mode = "Latent"
latent_upscale_modes = {
    "Latent": {"mode": "bilinear", "antialias": False},
    "Latent (antialiased)": {"mode": "bilinear", "antialias": True},
    "Latent (bicubic)": {"mode": "bicubic", "antialias": False},
    "Latent (bicubic antialiased)": {"mode": "bicubic", "antialias": True},
    "Latent (nearest)": {"mode": "nearest", "antialias": False},
    "Latent (nearest-exact)": {"mode": "nearest-exact", "antialias": False},
}

sd_model = None
"""The loaded model; the harness assigns a ``tests.standin.webui.model.StandinLatentDiffusion``."""


def _o(default, label="", **kw):
    return OptionInfo(default, label, **kw)


options_templates = {
    # Stable Diffusion
    "sd_model_checkpoint": _o(None, "Stable Diffusion checkpoint", infotext="Model hash"),
    "sd_vae": _o("Automatic", "SD VAE", infotext="VAE"),
    "enable_quantization": _o(False, "Enable quantization in K samplers").needs_reload_ui(),
    "emphasis": _o("Original", "Emphasis mode", infotext="Emphasis"),
    "enable_batch_seeds": _o(True, "Make K-diffusion samplers produce same images in a batch as for a single image"),
    "comma_padding_backtrack": _o(20, "Prompt word wrap length limit"),
    "CLIP_stop_at_last_layers": _o(1, "Clip skip", infotext="Clip skip"),
    "upcast_attn": _o(False, "Upcast cross attention layer to float32"),
    "randn_source": _o("GPU", "Random number generator source.", infotext="RNG"),
    "tiling": _o(False, "Tiling", infotext="Tiling"),
    "hires_fix_refiner_pass": _o("second pass", "Hires fix: which pass to enable refiner for",
                                 infotext="Hires refiner"),
    "sd_checkpoint_cache": _o(0, "Checkpoints to cache in RAM"),
    "disable_weights_auto_swap": _o(True, "Ignore selected VAE for stable diffusion checkpoints"),
    # img2img
    "inpainting_mask_weight": _o(1.0, "Inpainting conditioning mask strength", infotext="Conditional mask weight"),
    "initial_noise_multiplier": _o(1.0, "Noise multiplier for img2img", infotext="Noise multiplier"),
    "img2img_extra_noise": _o(0.0, "Extra noise multiplier for img2img and hires fix", infotext="Extra noise"),
    "img2img_color_correction": _o(False, "Apply color correction to img2img results"),
    "img2img_fix_steps": _o(False, "With img2img, do exactly the amount of steps the slider specifies."),
    "img2img_background_color": _o("#ffffff", "With img2img, fill transparent parts with this color."),
    "overlay_inpaint": _o(True, "Overlay original for inpaint"),
    "return_mask": _o(False, "For inpainting, include the greyscale mask in results for web"),
    "return_mask_composite": _o(False, "For inpainting, include masked composite in results for web"),
    # optimizations
    "cross_attention_optimization": _o("Automatic", "Cross attention optimization"),
    "s_min_uncond": _o(0.0, "Negative Guidance minimum sigma", infotext="NGMS"),
    "s_min_uncond_all": _o(False, "Negative Guidance minimum sigma all steps", infotext="NGMS all steps"),
    "token_merging_ratio": _o(0.0, "Token merging ratio", infotext="Token merging ratio"),
    "token_merging_ratio_img2img": _o(0.0, "Token merging ratio for img2img"),
    "token_merging_ratio_hr": _o(0.0, "Token merging ratio for high-res pass", infotext="Token merging ratio hr"),
    "pad_cond_uncond": _o(False, "Pad prompt/negative prompt", infotext="Pad conds"),
    "pad_cond_uncond_v0": _o(False, "Pad prompt/negative prompt (v0)", infotext="Pad conds v0"),
    "persistent_cond_cache": _o(True, "Persistent cond cache"),
    "batch_cond_uncond": _o(True, "Batch cond/uncond"),
    "fp8_storage": _o("Disable", "FP8 weight", infotext="FP8 weight"),
    "cache_fp16_weight": _o(False, "Cache FP16 weight for LoRA", infotext="Cache FP16 weight for LoRA"),
    # compatibility
    "use_old_emphasis_implementation": _o(False, "Use old emphasis implementation."),
    "use_old_karras_scheduler_sigmas": _o(False, "Use old karras scheduler sigmas (0.1 to 10)."),
    "no_dpmpp_sde_batch_determinism": _o(False, "Do not make DPM++ SDE deterministic across different batch sizes."),
    "use_old_hires_fix_width_height": _o(False, "For hires fix, use width/height sliders to set final resolution"),
    "hires_fix_use_firstpass_conds": _o(False, "For hires fix, calculate conds of second pass using extra networks "
                                              "of first pass."),
    "use_old_scheduling": _o(False, "Use old prompt editing timelines.", infotext="Old prompt editing timelines"),
    "use_downcasted_alpha_bar": _o(False, "Downcast model alphas_cumprod to fp16 before sampling."),
    "refiner_switch_by_sample_steps": _o(False, "Switch to refiner by sampling steps instead of model timesteps.",
                                         infotext="Refiner switch by sampling steps"),
    # saving / infotext
    "samples_save": _o(False, "Always save all generated images"),
    "grid_save": _o(False, "Always save all generated image grids"),
    "return_grid": _o(True, "Show grid in gallery"),
    "grid_only_if_multiple": _o(True, "Do not save grids consisting of one picture"),
    "save_images_before_highres_fix": _o(False, "Save a copy of image before applying highres fix."),
    "save_init_img": _o(False, "Save init images when using img2img"),
    "enable_pnginfo": _o(True, "Write infotext to metadata of the generated image"),
    "add_model_name_to_info": _o(True, "Add model name to infotext"),
    "add_model_hash_to_info": _o(True, "Add model hash to infotext"),
    "add_vae_name_to_info": _o(True, "Add VAE name to infotext"),
    "add_vae_hash_to_info": _o(True, "Add VAE hash to infotext"),
    "add_user_name_to_info": _o(False, "Add user name to infotext when authenticated"),
    "add_version_to_infotext": _o(True, "Add program version to infotext"),
    "infotext_skip_pasting": _o([], "Disregard fields from pasted infotext"),
    "infotext_styles": _o("Apply if any", "Infer styles from prompts of pasted infotext"),
    "textual_inversion_add_hashes_to_infotext": _o(True, "Add Textual Inversion hashes to infotext"),
    "face_restoration": _o(False, "Restore faces", infotext="Face restoration"),
    "face_restoration_model": _o("CodeFormer", "Face restoration model"),
    "img_max_size_mp": _o(200, "Maximum grid size (MPixels)"),
    "enable_console_prompts": _o(False, "Print prompts to console when generating with txt2img and img2img."),
    "samples_log_stdout": _o(False, "Always print all generation info to standard output"),
    "enable_prompt_comments": _o(True, "Enable comments"),
    # live previews
    "live_previews_enable": _o(True, "Show live previews of the created image"),
    "show_progress_every_n_steps": _o(10, "Live preview display period"),
    "show_progress_type": _o("Approx NN", "Live preview method"),
    "live_preview_content": _o("Prompt", "Live preview subject"),
    "live_preview_fast_interrupt": _o(False, "Return image with chosen live preview method on interrupt"),
    "multiple_tqdm": _o(True, "Add a second progress bar to the console that shows progress for an entire job."),
    "sd_vae_encode_method": _o("Full", "VAE type for encode", infotext="VAE Encoder"),
    "sd_vae_decode_method": _o("Full", "VAE type for decode", infotext="VAE Decoder"),
    # UI
    "hires_fix_show_sampler": _o(False, "Hires fix: show hires checkpoint and sampler selection"),
    "hires_fix_show_prompts": _o(False, "Hires fix: show hires prompt and negative prompt"),
    "ui_reorder_list": _o([], "UI item order for txt2img/img2img tabs"),
    # sampler parameters
    "hide_samplers": _o([], "Hide samplers in user interface"),
    "eta_ddim": _o(0.0, "Eta for DDIM", infotext="Eta DDIM"),
    "eta_ancestral": _o(1.0, "Eta for k-diffusion samplers", infotext="Eta"),
    "ddim_discretize": _o("uniform", "img2img DDIM discretize"),
    "s_churn": _o(0.0, "sigma churn", infotext="Sigma churn"),
    "s_tmin": _o(0.0, "sigma tmin", infotext="Sigma tmin"),
    "s_tmax": _o(0.0, "sigma tmax", infotext="Sigma tmax"),
    "s_noise": _o(1.0, "sigma noise", infotext="Sigma noise"),
    "sigma_min": _o(0.0, "sigma min", infotext="Schedule min sigma"),
    "sigma_max": _o(0.0, "sigma max", infotext="Schedule max sigma"),
    "rho": _o(0.0, "rho", infotext="Schedule rho"),
    "eta_noise_seed_delta": _o(0, "Eta noise seed delta", infotext="ENSD"),
    "always_discard_next_to_last_sigma": _o(False, "Always discard next-to-last sigma",
                                            infotext="Discard penultimate sigma"),
    "sgm_noise_multiplier": _o(False, "SGM noise multiplier", infotext="SGM noise multiplier"),
    "uni_pc_variant": _o("bh1", "UniPC variant", infotext="UniPC variant"),
    "uni_pc_skip_type": _o("time_uniform", "UniPC skip type", infotext="UniPC skip type"),
    "uni_pc_order": _o(3, "UniPC order", infotext="UniPC order"),
    "uni_pc_lower_order_final": _o(True, "UniPC lower order final", infotext="UniPC lower order final"),
    "sd_noise_schedule": _o("Default", "Noise schedule for sampling", infotext="Noise Schedule"),
    "skip_early_cond": _o(0.0, "Ignore negative prompt during early sampling", infotext="Skip Early CFG"),
    "beta_dist_alpha": _o(0.6, "Beta scheduler - alpha", infotext="Beta scheduler alpha"),
    "beta_dist_beta": _o(0.6, "Beta scheduler - beta", infotext="Beta scheduler beta"),
    # sdxl
    "sdxl_crop_top": _o(0, "crop top coordinate"),
    "sdxl_crop_left": _o(0, "crop left coordinate"),
}

restricted_opts = set()
opts = options.Options(options_templates, restricted_opts)

state = shared_state.State()


class _PromptStyles:
    """Stand-in of ``styles.StyleDatabase`` without any style."""

    styles: dict = {}

    def apply_styles_to_prompt(self, prompt, styles):
        return prompt

    def apply_negative_styles_to_prompt(self, prompt, styles):
        return prompt

    def extract_styles_from_prompt(self, prompt, negative_prompt):
        return [], prompt, negative_prompt


prompt_styles = _PromptStyles()


class TotalTQDM:
    """Stand-in of ``shared_total_tqdm.TotalTQDM``: counts updates instead of drawing a progress bar."""

    def __init__(self):
        self.n = 0
        self.total = None

    def reset(self):
        self.n = 0

    def update(self):
        self.n += 1

    def updateTotal(self, new_total):
        self.total = new_total

    def clear(self):
        self.n = 0
        self.total = None


total_tqdm = TotalTQDM()


def reload_gradio_theme(theme_name=None):
    pass
