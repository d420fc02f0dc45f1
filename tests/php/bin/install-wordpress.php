<?php
/**
 * Install the throwaway WordPress of tests/php/run and activate the two plugins.
 *
 * @package Molam_Form_Tests
 */

define( 'WP_INSTALLING', true );
$_SERVER['HTTP_HOST']   = '127.0.0.1';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
require getenv( 'MOLAM_TEST_WP_DIR' ) . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

$result = wp_install( 'Molam test shop', 'admin', 'admin@example.com', false, '', 'admin-password-' . getenv( 'MOLAM_TEST_DB_NAME' ) );
if ( is_wp_error( $result ) ) {
	fwrite( STDERR, $result->get_error_message() . "\n" );
	exit( 1 );
}
foreach ( array( 'molam-gateway/molam-gateway.php', 'molam-form/molam-form.php' ) as $plugin ) {
	$error = activate_plugin( $plugin );
	if ( is_wp_error( $error ) ) {
		fwrite( STDERR, "$plugin: " . $error->get_error_message() . "\n" );
		exit( 1 );
	}
}
exit( 0 );
