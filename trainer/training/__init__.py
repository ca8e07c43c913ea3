"""Fast (Johnson) style training, split by job: `parser`, `recipe` (defaults and resume policy),
`distributed` (torchrun), `step` (one optimizer step), `prepare` (what a run trains with), `loop`
(the run) and `metadata` (what the style file records). `trainer.fast` is the command that ties
them together."""
