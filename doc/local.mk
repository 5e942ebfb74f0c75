dist_man_MANS += doc/otpenroll.1 doc/pam_otpenroll.8
