<?php
/**
 * Boot the throwaway WordPress built by tests/php/run (real WordPress, real MariaDB).
 *
 * @package Molam_Form_Tests
 */

foreach ( array( 'MOLAM_TEST_WP_DIR', 'MOLAM_TEST_CP_URL', 'MOLAM_TEST_PLUGIN_TOKEN', 'MOLAM_TEST_OPS_TOKEN' ) as $var ) {
	if ( false === getenv( $var ) ) {
		fwrite( STDERR, "$var is not set: run the PHP suites through tests/php/run\n" );
		exit( 1 );
	}
}
$_SERVER['HTTP_HOST']   = '127.0.0.1';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
require getenv( 'MOLAM_TEST_WP_DIR' ) . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
require_once ABSPATH . 'wp-admin/includes/admin.php';
require_once __DIR__ . '/includes/class-molam-form-testcase.php';
