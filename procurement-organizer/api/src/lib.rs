//! Contract between the ramdisk agent and the tenant's gateway: peer registration and key requests.
