"""The papers' tables and figures: their numbers (`numbers`), the registry of what each needs (`registry`), and
`clipfit paper list / run` (`run`)."""
