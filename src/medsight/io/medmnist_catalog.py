"""The MedMNIST v2/v3 2D catalogue: download address, MD5, task and class names of each subset.

Facts from the MedMNIST release (Yang et al., Scientific Data 2023; records on Zenodo), kept as data
so that reading a subset does not need the ``medmnist`` package (which pulls torchvision).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MedMNISTSubset:
    """One 2D MedMNIST subset at 28x28."""

    name: str
    url: str
    md5: str
    task: str
    channels: int
    class_names: tuple[str, ...]


MEDMNIST_2D: dict[str, MedMNISTSubset] = {
    "pathmnist": MedMNISTSubset(
        "pathmnist",
        "https://zenodo.org/records/10519652/files/pathmnist.npz?download=1",
        "a8b06965200029087d5bd730944a56c1",
        "multi-class",
        3,
        (
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ),
    ),
    "chestmnist": MedMNISTSubset(
        "chestmnist",
        "https://zenodo.org/records/10519652/files/chestmnist.npz?download=1",
        "02c8a6516a18b556561a56cbdd36c4a8",
        "multi-label, binary-class",
        1,
        (
            "atelectasis",
            "cardiomegaly",
            "effusion",
            "infiltration",
            "mass",
            "nodule",
            "pneumonia",
            "pneumothorax",
            "consolidation",
            "edema",
            "emphysema",
            "fibrosis",
            "pleural",
            "hernia",
        ),
    ),
    "dermamnist": MedMNISTSubset(
        "dermamnist",
        "https://zenodo.org/records/10519652/files/dermamnist.npz?download=1",
        "0744692d530f8e62ec473284d019b0c7",
        "multi-class",
        3,
        (
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ),
    ),
    "octmnist": MedMNISTSubset(
        "octmnist",
        "https://zenodo.org/records/10519652/files/octmnist.npz?download=1",
        "c68d92d5b585d8d81f7112f81e2d0842",
        "multi-class",
        1,
        ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
    ),
    "pneumoniamnist": MedMNISTSubset(
        "pneumoniamnist",
        "https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
        "28209eda62fecd6e6a2d98b1501bb15f",
        "binary-class",
        1,
        ("normal", "pneumonia"),
    ),
    "retinamnist": MedMNISTSubset(
        "retinamnist",
        "https://zenodo.org/records/10519652/files/retinamnist.npz?download=1",
        "bd4c0672f1bba3e3a89f0e4e876791e4",
        "ordinal-regression",
        3,
        ("0", "1", "2", "3", "4"),
    ),
    "breastmnist": MedMNISTSubset(
        "breastmnist",
        "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1",
        "750601b1f35ba3300ea97c75c52ff8f6",
        "binary-class",
        1,
        ("malignant", "normal, benign"),
    ),
    "bloodmnist": MedMNISTSubset(
        "bloodmnist",
        "https://zenodo.org/records/10519652/files/bloodmnist.npz?download=1",
        "7053d0359d879ad8a5505303e11de1dc",
        "multi-class",
        3,
        (
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ),
    ),
    "tissuemnist": MedMNISTSubset(
        "tissuemnist",
        "https://zenodo.org/records/10519652/files/tissuemnist.npz?download=1",
        "ebe78ee8b05294063de985d821c1c34b",
        "multi-class",
        1,
        (
            "Collecting Duct, Connecting Tubule",
            "Distal Convoluted Tubule",
            "Glomerular endothelial cells",
            "Interstitial endothelial cells",
            "Leukocytes",
            "Podocytes",
            "Proximal Tubule Segments",
            "Thick Ascending Limb",
        ),
    ),
    "organamnist": MedMNISTSubset(
        "organamnist",
        "https://zenodo.org/records/10519652/files/organamnist.npz?download=1",
        "68e3f8846a6bd62f0c9bf841c0d9eacc",
        "multi-class",
        1,
        (
            "bladder",
            "femur-left",
            "femur-right",
            "heart",
            "kidney-left",
            "kidney-right",
            "liver",
            "lung-left",
            "lung-right",
            "pancreas",
            "spleen",
        ),
    ),
    "organcmnist": MedMNISTSubset(
        "organcmnist",
        "https://zenodo.org/records/10519652/files/organcmnist.npz?download=1",
        "b9ceb9546e10131b32923c5bbeaea2b1",
        "multi-class",
        1,
        (
            "bladder",
            "femur-left",
            "femur-right",
            "heart",
            "kidney-left",
            "kidney-right",
            "liver",
            "lung-left",
            "lung-right",
            "pancreas",
            "spleen",
        ),
    ),
    "organsmnist": MedMNISTSubset(
        "organsmnist",
        "https://zenodo.org/records/10519652/files/organsmnist.npz?download=1",
        "9ab87b696fb54e2a387ebe992d6ed5f1",
        "multi-class",
        1,
        (
            "bladder",
            "femur-left",
            "femur-right",
            "heart",
            "kidney-left",
            "kidney-right",
            "liver",
            "lung-left",
            "lung-right",
            "pancreas",
            "spleen",
        ),
    ),
}
