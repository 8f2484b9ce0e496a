"""Local fakes of IP Office (DevLink3, SMDR), TAPI, AES TelephonyService and AES DMCC for tests."""
