"""Preset files of other EQ programs: one record per format, readers and writers, mapping
foreign filters onto the model's bands.

``from neuraleq_jax import presets`` gives the public API: :func:`write_preset`,
:func:`read_preset`, :func:`preset_text`, :func:`parse_preset_text` and the format tables.
Other programs' text as filter lists lives in :mod:`.formats`, our settings → each format's
text in :mod:`.writers`, the mapping of filters onto the band layout in :mod:`.mapping`, and
the formats' records (a new format is one entry in ``PRESET_FORMATS``), detection and file I/O
in :mod:`.registry`.
"""

from neuraleq_jax.presets.formats import inert_text
from neuraleq_jax.presets.registry import (
    FILE_SUFFIXES,
    FORMATS,
    MEDIA_TYPES,
    ONE_SETTING_FORMATS,
    PRESET_FORMATS,
    SUFFIX_FORMATS,
    PresetFormat,
    PresetImport,
    apo_text,
    decode_preset_bytes,
    detect_format,
    easyeffects_text,
    parse_json,
    parse_preset_text,
    preset_format,
    preset_text,
    read_preset,
    read_preset_file,
    rew_text,
    write_preset,
)
from neuraleq_jax.presets.writers import csv_text, preamp_db, preset_dict

__all__ = [
    "FILE_SUFFIXES",
    "FORMATS",
    "MEDIA_TYPES",
    "ONE_SETTING_FORMATS",
    "PRESET_FORMATS",
    "SUFFIX_FORMATS",
    "PresetFormat",
    "PresetImport",
    "apo_text",
    "csv_text",
    "decode_preset_bytes",
    "detect_format",
    "easyeffects_text",
    "inert_text",
    "parse_json",
    "parse_preset_text",
    "preamp_db",
    "preset_dict",
    "preset_format",
    "preset_text",
    "read_preset",
    "read_preset_file",
    "rew_text",
    "write_preset",
]
