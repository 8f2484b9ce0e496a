"""The tray icon: a protocol, a headless implementation, and pystray's."""
