"""Typed errors. Every error a user can cause is an AppError with a message meant
for them; the UI renders these in one place (ui.show_error) and the CLI prints them."""


class AppError(Exception):
    """An error whose message is safe and useful to show to the user."""

    kind = "error"


class DataImportError(AppError):
    kind = "import"


class TemplateError(AppError):
    kind = "template"


class PriceFileError(AppError):
    kind = "prices"


class ConfigError(AppError):
    kind = "config"


class NotFound(AppError):
    kind = "not-found"


class StoreBusy(AppError):
    kind = "busy"


class BudgetExceeded(AppError):
    kind = "budget"
