"""The live frame path without Qt: frame sources and capture, the stylize thread and its processors
(stabilizer, controls), sinks (display, recorder, virtual camera), the live session and headless render."""
