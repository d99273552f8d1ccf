"""AP-10K keypoints, the skeleton we draw, and how StanfordExtra's 24 dog joints map onto them.

StanfordExtra joint order (as in the YOLO-pose label files of ../shared/data/dogpose):
 0 front-left paw, 1 front-left middle, 2 front-left top, 3 rear-left paw, 4 rear-left middle, 5 rear-left top,
 6 front-right paw, 7 front-right middle, 8 front-right top, 9 rear-right paw, 10 rear-right middle,
 11 rear-right top, 12 tail start, 13 tail end, 14 left ear base, 15 right ear base, 16 nose, 17 chin,
 18 left ear tip, 19 right ear tip, 20 left eye, 21 right eye, 22 withers, 23 throat.
"""
from __future__ import annotations

AP10K_NAMES: tuple[str, ...] = (
    "left_eye", "right_eye", "nose", "neck", "root_of_tail",
    "left_shoulder", "left_elbow", "left_front_paw",
    "right_shoulder", "right_elbow", "right_front_paw",
    "left_hip", "left_knee", "left_back_paw",
    "right_hip", "right_knee", "right_back_paw",
)
NUM_AP10K = len(AP10K_NAMES)
INDEX = {name: i for i, name in enumerate(AP10K_NAMES)}

# Our model predicts one more point that AP-10K lacks: the tail tip, used for the tail-to-body proportion only.
EXTRA_NAMES: tuple[str, ...] = ("tail_end",)
MODEL_NAMES: tuple[str, ...] = AP10K_NAMES + EXTRA_NAMES
NUM_MODEL = len(MODEL_NAMES)

# Direct one-to-one mapping: AP-10K index -> StanfordExtra index.
STANFORD_DIRECT: dict[int, int] = {
    INDEX["left_eye"]: 20,
    INDEX["right_eye"]: 21,
    INDEX["nose"]: 16,
    INDEX["root_of_tail"]: 12,
    INDEX["left_shoulder"]: 2,
    INDEX["left_elbow"]: 1,
    INDEX["left_front_paw"]: 0,
    INDEX["right_shoulder"]: 8,
    INDEX["right_elbow"]: 7,
    INDEX["right_front_paw"]: 6,
    INDEX["left_hip"]: 5,
    INDEX["left_knee"]: 4,
    INDEX["left_back_paw"]: 3,
    INDEX["right_hip"]: 11,
    INDEX["right_knee"]: 10,
    INDEX["right_back_paw"]: 9,
    NUM_AP10K + 0: 13,  # tail_end
}
# Eyes and neck are not labelled in our files (StanfordExtra's eye/withers/throat slots are empty there), so
# training derives them from labelled joints; they are never counted in PCK. Eye: 40 % of the way from the ear
# base to the nose. Neck: halfway between the ear bases' midpoint and the front legs' tops' midpoint.
EYE_FROM_EAR_TO_NOSE = 0.4
STANFORD_EAR_BASE = {INDEX["left_eye"]: 14, INDEX["right_eye"]: 15}
STANFORD_NOSE = 16
STANFORD_FRONT_TOPS = (2, 8)

FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (INDEX[a], INDEX[a.replace("left", "right")]) for a in AP10K_NAMES if a.startswith("left")
)


def flip_permutation(n: int = NUM_MODEL) -> list[int]:
    perm = list(range(n))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


SKELETON: tuple[tuple[str, str], ...] = (
    ("left_eye", "right_eye"), ("left_eye", "nose"), ("right_eye", "nose"), ("nose", "neck"),
    ("neck", "root_of_tail"),
    ("neck", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_front_paw"),
    ("neck", "right_shoulder"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_front_paw"),
    ("root_of_tail", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_back_paw"),
    ("root_of_tail", "right_hip"), ("right_hip", "right_knee"), ("right_knee", "right_back_paw"),
)
