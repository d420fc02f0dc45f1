<?php
/**
 * Plugin Name:       Molam Form
 * Plugin URI:        https://molam.example/docs/woocommerce
 * Description:       Molam safe upgrades for WooCommerce: backup, verified download, checkout pause, migration policy, smoke test, then commit or automatic rollback — driven by the Molam control plane's progressive rollouts.
 * Version:           1.0.0
 * Requires at least: 6.0
 * Requires PHP:      8.1
 * Author:            Molam
 * License:           GPL-2.0-or-later
 * Text Domain:       molam-form
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

define( 'MOLAM_FORM_VERSION', '1.0.0' );
define( 'MOLAM_FORM_FILE', __FILE__ );

require_once __DIR__ . '/includes/class-molam-form-settings.php';
require_once __DIR__ . '/includes/class-molam-form-http.php';
require_once __DIR__ . '/includes/class-molam-form-store.php';
require_once __DIR__ . '/includes/class-molam-form-outbox.php';
require_once __DIR__ . '/includes/class-molam-form-release.php';
require_once __DIR__ . '/includes/class-molam-form-migrations.php';
require_once __DIR__ . '/includes/class-molam-form-backup.php';
require_once __DIR__ . '/includes/class-molam-form-rollout.php';
require_once __DIR__ . '/includes/class-molam-form-upgrade.php';
require_once __DIR__ . '/includes/class-molam-form-payment-health.php';
require_once __DIR__ . '/includes/class-molam-form-housekeeping.php';
require_once __DIR__ . '/includes/class-molam-form-admin.php';
require_once __DIR__ . '/includes/functions.php';

register_activation_hook( __FILE__, 'molam_form_activate' );
register_deactivation_hook( __FILE__, 'molam_form_deactivate' );

if ( defined( 'WP_CLI' ) && WP_CLI ) {
	require_once __DIR__ . '/includes/class-molam-form-cli.php';
	WP_CLI::add_command( 'molam-form', 'Molam_Form_CLI' );
}

molam_form_boot();
