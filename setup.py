from setuptools import find_packages, setup

# torch is stated as a range; install the build you want (CPU/CUDA) before this package.
install_requires = [
    "torch>=2.4,<3",
    "diffusers>=0.35,<0.50",
    "accelerate>=1.0",  # diffusers needs it to load a checkpoint with fp32 modules (umT5), i.e. every pipeline folder
    "transformers>=4.51",
    "safetensors>=0.4",
    "numpy",
    "pillow",
    "tqdm",
    "huggingface_hub",
]

extras = {
    "training": [
        "peft>=0.15",
        "datasets>=3.0",
        "evaluate>=0.4",
        "sacrebleu>=2.0",
        "rouge-score",
        "tensorboard",
        "matplotlib",
        "imageio",
        "imageio-ffmpeg",
        "av>=12",  # PyAV: decodes in the process, ~10x faster than an ffmpeg subprocess per clip (latent caching)
        "tokenizers>=0.20",
        "sentencepiece",
    ],
    # writing and reading mp4 files: what `univigu generate` / `caption` and scripts/demo.sh
    # (examples/shapesworld_demo.py) need beyond the core
    "inference": ["imageio", "imageio-ffmpeg"],
}
extras["demo"] = ["gradio==6.31.0"] + extras["inference"]  # the Space; gradio = spaces_demo/README.md sdk_version
# torchao: tests/test_quantization.py (int8 weight-only through PipelineQuantizationConfig runs on the CPU)
extras["dev"] = sorted(set(extras["training"] + extras["demo"] + ["pytest>=8", "pytest-timeout", "playwright",
                                                                  "torchao>=0.15"]))

setup(
    name="univigu",
    version="0.1.0.dev0",
    description="Uni-ViGU in diffusers: one video diffusion transformer for text-to-video and video-to-text",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    package_data={"univigu": ["evaluation/metrics/*/*.py", "toyworld/assets/*/*", "toyworld/assets/*/*/*"]},
    python_requires=">=3.10",
    install_requires=install_requires,
    extras_require=extras,
    entry_points={"console_scripts": ["univigu=univigu.cli:main"]},
)
