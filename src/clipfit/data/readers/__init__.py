"""The dataset readers: each module registers the datasets it reads (`register_dataset`) or a 'prefix:PATH' form
(`register_prefix`); `clipfit.data.catalogue` imports every module here.

- `coop_layout`: CoOp's catalogue under --root (split files, ImageNet and its shifted test sets);
- `image_folder`: `imagefolder:PATH`, one sub-folder per class; `hf_datasets`: `hf:NAME_OR_PATH`;
- `layernorm_splits`: the LayerNorm-tuning paper's own splits; `wilds`: FMoW, Camelyon17, iWildCam;
- `episodic_sets`: Mini-ImageNet and CUB; `digits_cifar`: MNIST, CIFAR-10/100; `packaged`: sets that ship in packages;
- `synth_tasks`: the tasks on the procedural world and the stand-ins of the papers' datasets;
- `tables`: the small text tables datasets ship (csv, '<id> <value>' lines).
"""
