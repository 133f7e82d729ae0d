"""What shapes a network: `ModelConfig`, and the registry `CONFIGS` (``paper``, ``s2s-vgg16``,
``tiny``, ``vgg16-tiny``).

Plain data (no torch): commands that only read a config start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_CONVS = (2, 2, 3, 3, 3)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes the network (training settings live in the trainer's config).

    The first block is the paper's network; the switches after it are the tracking cues
    (`vostutorial.models.tracking`), all off in ``paper``.
    """

    name: str
    input_size: tuple[int, int]  # H, W the model is trained at
    widths: tuple[int, ...] = VGG16_WIDTHS  # VGG stage widths (each stage ends in a 2x pool)
    convs: tuple[int, ...] = VGG16_CONVS  # 3x3 convolutions per stage
    hidden: int = 512  # ConvLSTM channels
    lstm_kernel: int = 3
    decoder: tuple[int, ...] = (512, 256, 128, 64, 64)  # widths of the 5 upsampling stages
    decoder_kernel: int = 5
    skips: bool = False  # U-Net skips: decoder stages also see the frame's encoder features
    # skips from each stage's last convolution before its pool (an octave finer, down to full
    # resolution, as HED's side outputs), not from the pool: boundaries from the trunk's edges
    skips_before_pool: bool = False
    feedback: bool = False  # mask feedback: each frame sees the previous frame's mask
    hard_feedback: bool = False  # feed back the mask thresholded at 0.5, not probabilities
    matching: bool = False  # matching to the first frame (needs skips)
    match_dim: int = 32  # channels of the matching embedding
    # A frozen pretrained trunk: the encoder is VGG16's first ``len(widths)`` stages with
    # pretrained weights (`models.pretrained`), never trained; the initializer reads the
    # trunk's features of the first frame beside its mask instead of running a second VGG16
    # (unless it has one of its own: init_widths).
    frozen_trunk: bool = False
    # With a frozen trunk, how many of the last stages learn on top of it (at their own widths
    # in ``widths``/``convs``): the trunk is then VGG16's first ``len(widths) - learnt_stages``.
    learnt_stages: int = 0
    # With a frozen trunk, a learnt initializer of its own (stage widths and convolutions, as
    # the encoder's) on the first frame and its full-size mask; empty: a convolution on the
    # trunk's top map of the first frame beside the mask at that map's size.
    init_widths: tuple[int, ...] = ()
    init_convs: tuple[int, ...] = ()
    # Label propagation (`models.matching`) on the frozen trunk's third stage before its pool:
    # each cell's vote from the first frame's given mask and from the previous frame's
    # predicted one joins the decoder; nothing in it learns, so it holds on any footage.
    propagation: bool = False
    prop_k: int = 10  # neighbours voting per cell
    prop_temperature: float = 0.05  # softmax temperature over their cosine similarities
    prop_radius: int = 6  # how far (in cells of that stage) a neighbour may be

    def __post_init__(self) -> None:
        self.check_shape()
        self.check_cues()

    def check_shape(self) -> None:
        """The encoder, the decoder and a frozen trunk fit together (else a ValueError)."""
        if len(self.decoder) != len(self.widths):
            raise ValueError("the decoder needs one upsampling stage per encoder stage")
        if self.frozen_trunk and not self.is_vgg16:
            raise ValueError("frozen_trunk needs VGG16's widths and convolutions (or a prefix)")
        if self.learnt_stages and not (self.frozen_trunk and self.vgg_stages > 0):
            raise ValueError("learnt_stages needs frozen_trunk and at least one VGG16 stage")
        if self.init_widths and not (
            self.frozen_trunk and len(self.init_widths) == len(self.init_convs) == len(self.widths)
        ):
            raise ValueError("init_widths needs frozen_trunk and one width and count per stage")

    def check_cues(self) -> None:
        """Each tracking cue has the maps it reads (else a ValueError)."""
        if self.matching and not self.skips:
            raise ValueError("matching needs skips=True (it matches the 1/8 encoder features)")
        if self.matching and len(self.widths) < 4:
            raise ValueError("matching needs at least 4 encoder stages (it reads the 1/8 map)")
        if self.propagation and not (self.frozen_trunk and self.feedback):
            raise ValueError("propagation needs frozen_trunk and feedback")
        if self.propagation and self.vgg_stages < 3:
            raise ValueError("propagation needs the frozen trunk's first 3 stages (reads conv3_3)")
        if self.skips_before_pool and (not self.skips or self.matching):
            raise ValueError("skips_before_pool needs skips and no matching (it reads pool 3)")
        if self.hard_feedback and not self.feedback:
            raise ValueError("hard_feedback needs feedback")

    @property
    def vgg_stages(self) -> int:
        """How many of the first stages are (or with weights would be) VGG16's: all of them,
        less the ``learnt_stages`` above a frozen trunk."""
        return len(self.widths) - self.learnt_stages

    @property
    def is_vgg16(self) -> bool:
        """True when the encoder's first ``vgg_stages`` are VGG16's (its first stages, or all
        of them): VGG16 weights then fit them."""
        n = self.vgg_stages
        return self.widths[:n] == VGG16_WIDTHS[:n] and self.convs[:n] == VGG16_CONVS[:n]

    @property
    def stride(self) -> int:
        """The encoder's total downsampling, 2^stages: frame sides must be multiples of it."""
        return 2 ** len(self.widths)

    @property
    def tracks(self) -> bool:
        """True when any tracking cue is on (a `TrackingS2S`, not the plain `S2S`)."""
        return self.skips or self.feedback or self.matching or self.propagation


CONFIGS: dict[str, ModelConfig] = {
    "paper": ModelConfig("paper", (256, 448)),
    # The paper's data flow on a frozen pretrained VGG16 (three stages, to conv3_3 and its
    # pool: 1/8), the ConvLSTM at 1/8, U-Net skips, mask feedback and label propagation on
    # conv3_3 (1/4). An experiment, not shipped: untrained it already follows objects as
    # label propagation does; its CPU recipe so far makes it worse on whole videos
    # (benchmarks/results/s2s-vgg16-trial.json).
    "s2s-vgg16": ModelConfig(
        "s2s-vgg16",
        (128, 224),
        widths=VGG16_WIDTHS[:3],
        convs=VGG16_CONVS[:3],
        hidden=64,
        decoder=(64, 32, 16),
        decoder_kernel=3,
        skips=True,
        feedback=True,
        propagation=True,
        frozen_trunk=True,
    ),
    "tiny": ModelConfig(
        "tiny",
        (128, 224),
        widths=(16, 32, 64, 96, 128),
        convs=(1, 1, 2, 2, 2),
        hidden=64,
        decoder=(64, 48, 32, 16, 16),
        skips=True,
        feedback=True,
        matching=True,
    ),
}
# tiny's network on real features: its first two stages are VGG16's (conv1_1 to conv2_2 and
# their pools, HED's weights, frozen), the three above them learnt at tiny's widths, with tiny's
# own initializer on the frame and its full-size mask, and tiny's three cues. An experiment,
# not shipped: nearly as good as tiny on synthetic valid, worse on real video
# (benchmarks/results/vgg16-tiny-trial.json).
_tiny = CONFIGS["tiny"]
CONFIGS["vgg16-tiny"] = replace(
    _tiny,
    name="vgg16-tiny",
    widths=VGG16_WIDTHS[:2] + _tiny.widths[2:],
    convs=VGG16_CONVS[:2] + _tiny.convs[2:],
    frozen_trunk=True,
    learnt_stages=3,
    init_widths=_tiny.widths,
    init_convs=_tiny.convs,
)
