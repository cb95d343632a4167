"""Settings → the providers a call uses. The one place that knows which vendor module
implements which setting."""

from __future__ import annotations

from agent.calllog import CallLog
from agent.config import Settings
from agent.metrics import Metrics
from agent.responder import Responder, ScriptedResponder
from agent.session import SessionDeps
from audio.vad import SileroVad, Vad, VadUnavailable, WebRtcVad
from providers.base import AsyncResource, SpeechToText, TextToSpeech
from providers.errors import ConfigError, ProviderError
from providers.telephony.twilio_media import Start

_SOURCE = "settings"


def _stt(settings: Settings) -> tuple[SpeechToText, AsyncResource]:
    if settings.stt.provider == "local":
        from providers.stt.local import LocalSpeechToText

        stt = LocalSpeechToText()
        return stt, stt
    raise ConfigError(_SOURCE, "stt.provider",
                      f"{settings.stt.provider!r} is not available in this build (use 'local')")


def _tts(settings: Settings) -> TextToSpeech:
    if settings.tts.provider == "local":
        from providers.tts.local import LocalTts

        try:
            return LocalTts(settings.tts.voice_id) if settings.tts.voice_id else LocalTts()
        except ProviderError as exc:
            raise ConfigError(_SOURCE, "tts.voice_id", exc.message) from exc
    raise ConfigError(_SOURCE, "tts.provider",
                      f"{settings.tts.provider!r} is not available in this build (use 'local')")




def build_deps(settings: Settings) -> SessionDeps:
    """Construct every provider once for the process (models load here, not per call)."""
    turn = settings.turn
    if turn.vad == "silero":
        try:
            SileroVad()  # fail at start-up, with a clear message, if the model is missing
        except VadUnavailable as exc:
            raise ConfigError(_SOURCE, "turn.vad", str(exc)) from exc

        def make_vad() -> Vad:
            return SileroVad()
    else:
        aggressiveness = turn.vad_aggressiveness

        def make_vad() -> Vad:
            return WebRtcVad(aggressiveness)

    def make_responder(start: Start) -> Responder:
        return ScriptedResponder()

    stt, stt_resource = _stt(settings)
    return SessionDeps(
        stt=stt,
        tts=_tts(settings),
        make_vad=make_vad,
        make_responder=make_responder,
        call_log=CallLog(),
        metrics=Metrics(),
        resources=(stt_resource,),
    )
