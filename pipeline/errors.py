"""Errors raised by qcflow. Each names what went wrong and where."""

from __future__ import annotations


class QCError(Exception):
    """Base class of every error qcflow raises on purpose."""


class ConfigError(QCError):
    """A configuration file or value is invalid (names the file and field path)."""


class FrameError(QCError):
    """A frame could not be decoded or does not have the expected shape."""


class ModelContractError(QCError):
    """A model file does not match the contract in its model.json."""


class ModelNotFound(QCError):
    """A model name is not registered in the database."""


class DatasetError(QCError):
    """A dataset folder is missing or not in the expected layout."""


class SourceUnavailable(QCError):
    """A frame source (folder, stream, camera) cannot be opened or read."""


class ReviewRequired(QCError):
    """Something that needs a person's approval was used without it."""


class StorageError(QCError):
    """The image store or the database cannot be read or written."""
