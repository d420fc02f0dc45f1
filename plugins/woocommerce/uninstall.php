<?php
/**
 * Uninstall: remove everything Molam Form stored. The managed plugin's tables, option rows and
 * migration records are that plugin's data and stay.
 *
 * @package Molam_Form
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

global $wpdb;

wp_clear_scheduled_hook( 'molam_form_upgrade_check' );

$molam_form_settings = get_option( 'molam_form_settings' );
$molam_form_slug     = is_array( $molam_form_settings ) && ! empty( $molam_form_settings['plugin_slug'] ) ? $molam_form_settings['plugin_slug'] : basename( __DIR__ );

// Options: settings, outbox, backup key, snapshots of option rows, notices.
$molam_form_names = $wpdb->get_col( $wpdb->prepare( "SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE %s", $wpdb->esc_like( 'molam_form_' ) . '%' ) );
foreach ( $molam_form_names as $molam_form_name ) {
	delete_option( $molam_form_name );
}

// The work directory beside the plugins: journal, flag, kept previous version, archives.
$molam_form_work = trailingslashit( WP_PLUGIN_DIR ) . '.molam-agent/' . $molam_form_slug;
$molam_form_rm   = function ( $path ) use ( &$molam_form_rm ) {
	if ( is_link( $path ) || is_file( $path ) ) {
		unlink( $path );
		return;
	}
	if ( is_dir( $path ) ) {
		foreach ( array_diff( scandir( $path ), array( '.', '..' ) ) as $entry ) {
			$molam_form_rm( "$path/$entry" );
		}
		rmdir( $path );
	}
};
if ( '' !== $molam_form_slug && false === strpos( $molam_form_slug, '/' ) && false === strpos( $molam_form_slug, '..' ) ) {
	$molam_form_rm( $molam_form_work );
}
$molam_form_root = dirname( $molam_form_work );
if ( is_dir( $molam_form_root ) && array() === array_diff( scandir( $molam_form_root ), array( '.', '..', '.htaccess', 'index.php' ) ) ) {
	$molam_form_rm( $molam_form_root );
}
