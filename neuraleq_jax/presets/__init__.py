"""Preset files of other EQ programs: one record per format, readers and writers, mapping
foreign filters onto the model's bands.

``from neuraleq_jax import presets`` gives the public API: :func:`write_preset`,
:func:`read_preset`, :func:`preset_text`, :func:`parse_preset_text` and the format tables.
The formats' text lives in :mod:`.formats`, the mapping onto the band layout in
:mod:`.mapping`, the table of formats and the file I/O in :mod:`.registry`.
"""

from neuraleq_jax.presets.registry import (
    FILE_SUFFIXES,
    FORMATS,
    MEDIA_TYPES,
    ONE_SETTING_FORMATS,
    SUFFIX_FORMATS,
    PresetImport,
    apo_text,
    csv_text,
    detect_format,
    easyeffects_text,
    parse_json,
    parse_preset_text,
    preamp_db,
    preset_dict,
    preset_text,
    read_preset,
    read_preset_file,
    rew_text,
    write_preset,
)

__all__ = [
    "FILE_SUFFIXES",
    "FORMATS",
    "MEDIA_TYPES",
    "ONE_SETTING_FORMATS",
    "SUFFIX_FORMATS",
    "PresetImport",
    "apo_text",
    "csv_text",
    "detect_format",
    "easyeffects_text",
    "parse_json",
    "parse_preset_text",
    "preamp_db",
    "preset_dict",
    "preset_text",
    "read_preset",
    "read_preset_file",
    "rew_text",
    "write_preset",
]
