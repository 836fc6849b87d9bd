"""Training settings and controls: method, resolution, budget, batch, device; start/pause/stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.config import SIZES
from engine.data import few_photos
from engine.describe import rate, where
from engine.events import Finished, PhaseChanged, Progress
from engine.methods.registry import SPECS

METHOD_TIPS = {name: spec.summary for name, spec in SPECS.items()}


class TrainingPanel(QGroupBox):
    """Emits startRequested / pauseToggled / stopRequested; the window owns the run."""

    startRequested = Signal()
    pauseToggled = Signal(bool)
    stopRequested = Signal()
    newRunRequested = Signal()
    # (usable photos, size, device, minutes): the window hands it to the estimate controller
    estimate_wanted = Signal(int, int, str, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Training", parent)
        self.method = QComboBox()
        for name in SPECS:
            self.method.addItem(name)
            self.method.setItemData(self.method.count() - 1, METHOD_TIPS.get(name, ""),
                                    Qt.ItemDataRole.ToolTipRole)
        self.method.setToolTip("How the object is separated from the background. PerturbGAN is "
                               "the one that separated objects on CPU budgets here; hover over "
                               "each method in the list for what it does.")
        self.size = QComboBox()
        for s in SIZES:
            self.size.addItem(f"{s} px", s)
        self.size.setCurrentIndex(SIZES.index(64))
        self.size.setToolTip("Training resolution. 32 px trains ~4× faster on a CPU; "
                             "masks of any photo size are still produced.")
        self.by_minutes = QRadioButton("minutes")
        self.by_steps = QRadioButton("steps")
        self.by_minutes.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.by_minutes)
        group.addButton(self.by_steps)
        self.minutes = QSpinBox()
        self.minutes.setRange(1, 24 * 60)
        self.minutes.setValue(20)
        self.minutes.setToolTip("Time for the whole pipeline (GrabCut prior, GAN, segmenter "
                                "rounds). 20 min on a CPU gives usable masks for simple "
                                "subjects; more time gives crisper ones.")
        self.steps = QSpinBox()
        self.steps.setRange(1, 1_000_000)
        self.steps.setValue(2000)
        self.steps.setSingleStep(100)
        self.steps.setToolTip("GAN steps instead of time: the same number gives the same run on "
                              "any machine (slower machines just take longer).")
        self.by_minutes.toggled.connect(self._sync_budget)
        self.batch = QSpinBox()
        self.batch.setRange(2, 256)
        self.batch.setValue(32)
        self.batch.setToolTip("Images per step. 32 is the published setting; lower it if memory "
                              "is short.")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setToolTip("auto uses an NVIDIA GPU when there is one, else the CPU. The "
                               "device really used is shown in the status bar.")
        self.bootstrap = QCheckBox("GrabCut bootstrap prior")
        self.bootstrap.setChecked(True)
        self.bootstrap.setToolTip("Train a label-free prior on GrabCut masks first; it tells the "
                                  "GAN which layer the object belongs to (slower start, better masks).")

        self.no_gan = QCheckBox("No GAN (prior + self-training)")
        self.no_gan.setToolTip("Leave the GAN out: the GrabCut prior, then rounds of the segmenter "
                               "learning from its own edge-snapped masks of your photos. Short "
                               "budgets do this anyway; needs the bootstrap prior.")

        budget = QHBoxLayout()
        budget.addWidget(self.minutes)
        budget.addWidget(self.by_minutes)
        budget.addWidget(self.steps)
        budget.addWidget(self.by_steps)
        form = QFormLayout()
        form.addRow("Method", self.method)
        form.addRow("Resolution", self.size)
        form.addRow("Budget", budget)
        row = QHBoxLayout()
        row.addWidget(self.batch)
        row.addWidget(QLabel("Device"))
        row.addWidget(self.device, 1)
        form.addRow("Batch", row)
        form.addRow("", self.bootstrap)
        form.addRow("", self.no_gan)

        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Start a new run in the runs folder")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Hold training at the next step boundary")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop at the next step; a checkpoint is saved so the run "
                                    "can be resumed")
        self.start_button.clicked.connect(self.startRequested)
        self.pause_button.toggled.connect(self._on_pause)
        self.stop_button.clicked.connect(self.stopRequested)
        self.new_run_button = QPushButton("New run instead")
        self.new_run_button.setToolTip("Start a fresh run with these settings instead of resuming")
        self.new_run_button.clicked.connect(self.newRunRequested)
        self.new_run_button.setVisible(False)
        self.resume_label = QLabel("")
        self.resume_label.setWordWrap(True)
        self.resume_label.setVisible(False)
        # Their space is kept while hidden: appearing after Stop, they pushed the thumbnail grid
        # up and cut its last row in half.
        for w in (self.resume_label, self.new_run_button):
            policy = w.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            w.setSizePolicy(policy)
        buttons = QGridLayout()
        buttons.addWidget(self.start_button, 0, 0)
        buttons.addWidget(self.pause_button, 0, 1)
        buttons.addWidget(self.stop_button, 0, 2)
        buttons.addWidget(self.new_run_button, 1, 0, 1, 3)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.rate_label = QLabel(" ")
        self.photos_warning = QLabel("")
        self.photos_warning.setWordWrap(True)
        self.photos_warning.setStyleSheet("color: #e0a030")
        self.photos_warning.setVisible(False)
        # "about N minutes here" before Start, from this machine's last measured rates (issue 16)
        self.estimate_label = QLabel("")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setToolTip("The budget a segmenter better than GrabCut needs on these "
                                       "photos here: every photo GrabCut-ed, the prior's fit and "
                                       "a self-training round, at the speed the last run "
                                       "measured on this machine.")
        self.estimate_label.setVisible(False)
        self.usable_photos = 0
        for signal in (self.minutes.valueChanged, self.size.currentIndexChanged,
                       self.device.currentIndexChanged, self.by_minutes.toggled):
            signal.connect(self.refresh_estimate)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.estimate_label)
        layout.addWidget(self.photos_warning)
        layout.addWidget(self.resume_label)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.rate_label)
        self._sync_budget()
        self.set_running(False)
        # Progress events come several times a second; the newest is shown on a timer.
        self.latest_progress: Progress | None = None
        self.paused = False
        self.ui_timer = QTimer(self)
        self.ui_timer.setInterval(100)
        self.ui_timer.timeout.connect(self._apply_progress)
        self.ui_timer.start()

    def _sync_budget(self) -> None:
        self.minutes.setEnabled(self.by_minutes.isChecked())
        self.steps.setEnabled(self.by_steps.isChecked())

    def _on_pause(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pauseToggled.emit(paused)

    def set_running(self, running: bool, can_start: bool = True) -> None:
        for w in (self.method, self.size, self.minutes, self.steps, self.by_minutes,
                  self.by_steps, self.batch, self.device, self.bootstrap, self.no_gan):
            w.setEnabled(not running)
        if not running:
            self.paused = False
            self._sync_budget()
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)
        self.start_button.setEnabled(not running and can_start)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)

    def show_resume(self, run_dir: str | None) -> None:
        """Start resumes ``run_dir`` when given (method and size are then those of the run)."""
        self.start_button.setText("Resume run" if run_dir else "Start")
        self.resume_label.setText(f"Start resumes run “{Path(run_dir).name}”" if run_dir else "")
        self.resume_label.setToolTip(run_dir or "")
        self.resume_label.setVisible(bool(run_dir))
        self.new_run_button.setVisible(bool(run_dir) and self.start_button.isEnabled())

    def options(self) -> dict[str, Any]:
        """The chosen settings: RunConfig keyword arguments (without folder/out) + ``bootstrap``."""
        opts: dict[str, Any] = {
            "method": self.method.currentText(),
            "size": int(self.size.currentData()),
            "batch": self.batch.value(),
            "device": self.device.currentText(),
            "bootstrap": self.bootstrap.isChecked(),
            "gan": not self.no_gan.isChecked(),
        }
        if self.by_minutes.isChecked():
            opts["minutes"] = float(self.minutes.value())
        else:
            opts["steps"] = self.steps.value()
        return opts

    def reset_progress(self, text: str = "idle") -> None:
        self.latest_progress = None
        self.paused = False
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat(text)
        self.rate_label.setText(" ")

    @Slot()
    def refresh_estimate(self) -> None:
        """Ask (off the GUI thread) for the minutes the folder needs here; shown when it answers."""
        if not self.by_minutes.isChecked() or self.usable_photos <= 0:
            self.estimate_label.setVisible(False)
            return
        self.estimate_wanted.emit(self.usable_photos, int(self.size.currentData()),
                                  self.device.currentText(), float(self.minutes.value()))

    @Slot(str)
    def show_estimate(self, text: str) -> None:
        """The estimate's answer (the window connects the estimate controller here)."""
        shown = bool(text) and self.by_minutes.isChecked() and self.usable_photos > 0
        self.estimate_label.setText(text)
        self.estimate_label.setVisible(shown)

    def warn_photos(self, usable: int, still_counting: bool) -> None:
        """Say so before a run starts on too few photos to learn from; the budget estimate
        follows the photo count."""
        if usable != self.usable_photos:
            self.usable_photos = usable
            self.refresh_estimate()
        text = few_photos(usable, self.batch.value()) if usable > 0 and not still_counting else None
        few = text is not None
        self.photos_warning.setText(f"{text[0].upper()}{text[1:]}." if text else "")
        self.photos_warning.setVisible(few)

    @Slot(object)
    def on_event(self, ev: object) -> None:
        if isinstance(ev, Progress):
            self.latest_progress = ev  # shown by the timer
        elif isinstance(ev, PhaseChanged):
            self.latest_progress = None
            self.progress.setFormat(f"{ev.phase} · starting")
            self.rate_label.setText(" ")
        elif isinstance(ev, Finished):
            self.latest_progress = None
            self.progress.setFormat(f"{'stopped' if ev.stopped else 'finished'} · step {ev.step}")
            self.rate_label.setText(" ")

    def show_paused(self, paused: bool) -> None:
        """While paused nothing moves: no rate, no ETA, only where it stands."""
        self.paused = paused
        if paused:
            self.latest_progress = None
            text = self.progress.format().split(" · paused")[0]
            self.progress.setFormat(f"{text} · paused")
            self.rate_label.setText("paused: Resume continues from here")
        else:
            self.rate_label.setText(" ")

    @Slot()
    def _apply_progress(self) -> None:
        ev, self.latest_progress = self.latest_progress, None
        if ev is None or self.paused:
            return
        if ev.fraction is None:
            self.progress.setRange(0, 0)  # busy indicator
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(round(1000 * max(0.0, min(1.0, ev.fraction)))))
        self.progress.setFormat(where(ev))
        self.rate_label.setText(rate(ev))

    def save(self, settings: QSettings) -> None:
        settings.setValue("train/method", self.method.currentText())
        settings.setValue("train/size", int(self.size.currentData()))
        settings.setValue("train/by_minutes", self.by_minutes.isChecked())
        settings.setValue("train/minutes", self.minutes.value())
        settings.setValue("train/steps", self.steps.value())
        settings.setValue("train/batch", self.batch.value())
        settings.setValue("train/device", self.device.currentText())
        settings.setValue("train/bootstrap", self.bootstrap.isChecked())
        settings.setValue("train/no_gan", self.no_gan.isChecked())

    def load(self, settings: QSettings) -> None:
        def get(key: str, default: Any, kind: type) -> Any:
            try:
                return kind(settings.value(key, default))
            except (TypeError, ValueError):
                return default

        self.method.setCurrentText(get("train/method", "perturbgan", str))
        size = get("train/size", 64, int)
        if size in SIZES:
            self.size.setCurrentIndex(SIZES.index(size))
        by_minutes = str(settings.value("train/by_minutes", "true")).lower() == "true"
        (self.by_minutes if by_minutes else self.by_steps).setChecked(True)
        self.minutes.setValue(get("train/minutes", 20, int))
        self.steps.setValue(get("train/steps", 2000, int))
        self.batch.setValue(get("train/batch", 32, int))
        self.device.setCurrentText(get("train/device", "auto", str))
        self.bootstrap.setChecked(str(settings.value("train/bootstrap", "true")).lower() == "true")
        self.no_gan.setChecked(str(settings.value("train/no_gan", "false")).lower() == "true")
        self._sync_budget()

    def apply_config(self, config: Any) -> None:
        """Show a saved run's settings (when a run folder is opened to resume it)."""
        self.method.setCurrentText(config.method)
        if config.size in SIZES:
            self.size.setCurrentIndex(SIZES.index(config.size))
        if config.minutes is not None:
            self.by_minutes.setChecked(True)
            self.minutes.setValue(max(1, int(round(config.minutes))))
        else:
            self.by_steps.setChecked(True)
            self.steps.setValue(int(config.steps))
        self.batch.setValue(config.batch)
        self.device.setCurrentText(config.device)
        self.bootstrap.setChecked(bool(config.pipeline.bootstrap))
        self.no_gan.setChecked(not config.pipeline.gan)
        self._sync_budget()
