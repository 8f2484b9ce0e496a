"""The ``ctid-launcher`` command: run, login, logout, autostart enable|disable|status, doctor, version.

Errors are one line on stderr and an exit code (1: failed, 2: bad usage or settings), never a
traceback.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import logging.handlers
import signal
import sys

import trio

from ctid_launcher import __version__, config
from ctid_launcher.api import Api, ApiError, Unreachable
from ctid_launcher.credentials import TokenStore, token_from_login
from ctid_launcher.i18n import set_language, t

log = logging.getLogger("ctid_launcher")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctid-launcher", description="ctid's desktop launcher")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the launcher (tray icon, CRM pop-up, lock → away)")
    run.add_argument("--no-tray", action="store_true", help="no tray icon (terminal servers, CI)")
    run.add_argument("--session-source", default="auto", help="auto, or fake:<file> for tests and demos")
    run.add_argument("--autostart", action="store_true", help="started by the OS at logon")
    login = sub.add_parser("login", help="sign in and keep the token in the OS keyring")
    login.add_argument("--server", help="ctid's address, e.g. https://ctid.example.com")
    login.add_argument("--user", help="the ctid user name")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.add_parser("logout", help="forget the token")
    auto = sub.add_parser("autostart", help="start with the session")
    auto.add_argument("action", choices=["enable", "disable", "status"])
    doctor = sub.add_parser("doctor", help="check the set-up, for support")
    doctor.add_argument("--session-source", default="auto")
    sub.add_parser("version")
    return parser


def setup_logging(to_stderr: bool = True) -> None:
    directory = config.log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.handlers.RotatingFileHandler(
        directory / "ctid-launcher.log", maxBytes=1_000_000, backupCount=3, encoding="utf-8")]
    if to_stderr:
        handlers.append(logging.StreamHandler())
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(message: str, code: int = 1) -> int:
    print(f"ctid-launcher: {message}", file=sys.stderr)
    return code


async def _login(settings: config.Settings, user: str, password: str) -> tuple[dict, TokenStore]:
    api = Api(settings.server)
    try:
        answer = await api.login(user, password)
    finally:
        await api.aclose()
    store = TokenStore(settings.server, user)
    store.save(token_from_login(answer["access_token"], answer.get("expires_in")))
    return answer, store


async def _logout(settings: config.Settings) -> None:
    store = TokenStore(settings.server, settings.username)
    token = store.load()
    if token and settings.agent:
        api = Api(settings.server, token.value)
        try:
            await api.end_lease(settings.agent)
        except (ApiError, Unreachable):
            pass
        finally:
            await api.aclose()
    store.delete()


async def _open_panel(settings: config.Settings) -> None:
    """Open the panel signed in (a one-time ``#code=``), with the token of the launcher's sign-in."""
    from ctid_launcher.browser import open_url

    token = TokenStore(settings.server, settings.username).load()
    if token is None:
        raise ApiError(401, "not_signed_in", t("not_signed_in"))
    api = Api(settings.server, token.value)
    try:
        open_url(await api.panel_url())
    finally:
        await api.aclose()


async def _run(settings: config.Settings, args) -> None:
    from ctid_launcher.app import Launcher
    from ctid_launcher.policy import Kind
    from ctid_launcher.session import watcher_for

    tray = None
    if settings.tray and not args.no_tray and sys.platform != "darwin":  # pystray's darwin backend needs the main thread
        from ctid_launcher.tray.pystray_tray import PystrayTray

        tray = PystrayTray()
    launcher = Launcher(settings, TokenStore(settings.server, settings.username), watcher_for(args.session_source),
                        tray=tray)
    async with trio.open_nursery() as nursery:
        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for received in signals:
                    log.info("signal %s: signing off", received)
                    launcher.quit(Kind.LOGOFF)  # shutdown / logoff / Ctrl+C: offline, lease ended

        nursery.start_soon(on_signals)
        await launcher.run()
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None, *, gui: bool = False) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = config.load()
    except config.SettingsError as exc:
        return _fail(f"settings: {exc}", 2)
    set_language(settings.language or None)
    if args.command == "version":
        print(f"ctid-launcher {__version__}")
        return 0
    if args.command == "login":
        settings.server = (args.server or settings.server).rstrip("/")
        user = args.user or settings.username
        if not settings.server or not user:
            return _fail("login needs --server and --user (the first time)", 2)
        try:
            settings.validate()
        except config.SettingsError as exc:
            return _fail(str(exc), 2)
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"{user}: ")
        try:
            answer, store = trio.run(_login, settings, user, password)
        except ApiError as exc:
            return _fail(t("bad_login", reason=exc.message or exc.error_id))
        except Unreachable as exc:
            return _fail(t("cannot_reach", server=settings.server, reason=str(exc)))
        settings.username, settings.agent = user, (answer.get("user") or {}).get("agent") or ""
        if not settings.agent:
            return _fail(f"user {user!r} is not linked to a ctid agent: the launcher needs an agent's user", 2)
        config.save(settings)
        print(t("signed_in_as", server=settings.server, user=user) + f" ({store.where})")
        return 0
    if args.command == "logout":
        if settings.server:
            trio.run(_logout, settings)
        print(t("signed_out_ok"))
        return 0
    if args.command == "autostart":
        from ctid_launcher.autostart import backend, launcher_command

        auto = backend()
        status = {"enable": lambda: auto.enable(launcher_command()), "disable": auto.disable,
                  "status": auto.status}[args.action]()
        if status.registered and not status.enabled:
            print(t("autostart_disabled_by_user", where=status.where))
        else:
            print(t("autostart_on", where=status.where) if status.enabled else t("autostart_off"))
        return 0
    if args.command == "doctor":
        from ctid_launcher.doctor import run_checks

        failures = trio.run(run_checks, settings, print, args.session_source)
        return 1 if failures else 0
    # run
    from ctid_launcher.app import NotSignedIn
    from ctid_launcher.single_instance import AlreadyRunning, SingleInstance

    if not settings.server or not settings.agent:
        return _fail(t("not_signed_in"), 2)
    setup_logging(to_stderr=not gui)
    try:
        with SingleInstance():
            trio.run(_run, settings, args)
    except AlreadyRunning:
        print(t("already_running"))
        if not args.autostart:  # started again from the menu or a shortcut: do what the tray's Open panel does
            try:
                trio.run(_open_panel, settings)
                print(t("panel_opened"))
            except (ApiError, Unreachable) as exc:
                print(t("panel_not_opened", reason=getattr(exc, "message", None) or str(exc)), file=sys.stderr)
        return 0
    except NotSignedIn as exc:
        return _fail(str(exc), 2)
    except ValueError as exc:
        return _fail(str(exc), 2)
    return 0


def main_gui() -> int:
    """The Windows GUI-subsystem entry point (no console window at logon): ``run`` by default."""
    return main(sys.argv[1:] or ["run"], gui=True)
