"""NAFNet hyperparameters as data, and the official presets.

A NAFNet is fully described by its image channels, its width and four block counts; everything else is
derived (channels double at each encoder level, the input must be a multiple of ``2**len(enc_blocks)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SizeRule:
    """The input sizes a NAFNet takes: height and width positive multiples of ``multiple`` (the network halves the
    image once per encoder level). The one rule that export, the tiler, training and the CLI ask."""

    multiple: int

    def fits(self, n: int) -> bool:
        return n >= self.multiple and n % self.multiple == 0

    def padded(self, n: int) -> int:
        """``n`` rounded up to the rule (what a full-frame run pads to)."""
        return -(-n // self.multiple) * self.multiple

    def problem(self, h: int, w: int) -> str | None:
        """Why ``h`` x ``w`` is not an input size, in one line naming the nearest sizes that are; None if it is."""
        m = self.multiple
        if self.fits(h) and self.fits(w):
            return None
        return (
            f"size {h}x{w} is not a multiple of {m} (this network halves the image {m.bit_length() - 1} times); "
            f"use e.g. {max(m, h // m * m)}x{max(m, w // m * m)}"
        )


@dataclass(frozen=True)
class NAFNetConfig:
    img_channel: int = 3
    width: int = 32
    enc_blocks: tuple[int, ...] = (1, 1, 1, 28)
    middle_blocks: int = 1
    dec_blocks: tuple[int, ...] = (1, 1, 1, 1)

    def __post_init__(self) -> None:
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ValueError(
                f"encoder and decoder must have the same number of levels, got {self.enc_blocks} and {self.dec_blocks}"
            )
        if self.width < 1 or self.img_channel < 1:
            raise ValueError(f"width and img_channel must be positive, got {self.width} and {self.img_channel}")

    @property
    def padder_size(self) -> int:
        """Input height and width must be multiples of this (one factor 2 per encoder level)."""
        return 2 ** len(self.enc_blocks)

    @property
    def sizes(self) -> SizeRule:
        """The input sizes this network takes (see :class:`SizeRule`)."""
        return SizeRule(self.padder_size)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["enc_blocks"] = list(self.enc_blocks)
        d["dec_blocks"] = list(self.dec_blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NAFNetConfig":
        return cls(
            img_channel=int(d["img_channel"]),
            width=int(d["width"]),
            enc_blocks=tuple(int(n) for n in d["enc_blocks"]),
            middle_blocks=int(d["middle_blocks"]),
            dec_blocks=tuple(int(n) for n in d["dec_blocks"]),
        )

    def describe(self) -> str:
        name = preset_name(self)
        shape = (
            f"width {self.width}, enc {list(self.enc_blocks)}, mid {self.middle_blocks}, dec {list(self.dec_blocks)}"
        )
        return f"{name} ({shape})" if name else shape


def _gopro(width: int) -> NAFNetConfig:
    return NAFNetConfig(width=width, enc_blocks=(1, 1, 1, 28), middle_blocks=1, dec_blocks=(1, 1, 1, 1))


def _sidd(width: int) -> NAFNetConfig:
    return NAFNetConfig(width=width, enc_blocks=(2, 2, 4, 8), middle_blocks=12, dec_blocks=(2, 2, 2, 2))


#: The official megvii releases, by the names their checkpoints carry. REDS-w64 shares GoPro's layout, so a
#: state dict cannot tell them apart; detection reports the first name that matches.
PRESETS: dict[str, NAFNetConfig] = {
    "GoPro-width32": _gopro(32),
    "GoPro-width64": _gopro(64),
    "REDS-width64": _gopro(64),
    "SIDD-width32": _sidd(32),
    "SIDD-width64": _sidd(64),
}


def preset_name(config: NAFNetConfig) -> str | None:
    """The official name of ``config`` (``"GoPro-width64 / REDS-width64"`` when ambiguous), or None."""
    names = [name for name, preset in PRESETS.items() if preset == config]
    return " / ".join(names) if names else None
