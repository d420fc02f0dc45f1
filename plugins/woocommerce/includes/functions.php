<?php
/**
 * Hooks: health endpoint, maintenance check, WP-cron, recovery on page load.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

const MOLAM_FORM_CRON_HOOK = 'molam_form_upgrade_check';

/**
 * The maintenance message while checkout is paused, or null. Reads the agent's flag
 * (`docs/agent.md`, Maintenance mode): active only while `time() < until`.
 *
 * @return string|null
 */
function molam_form_in_maintenance() {
	$flag = Molam_Form_Store::flag_path();
	if ( ! is_readable( $flag ) ) {
		return null;
	}
	$data = json_decode( (string) file_get_contents( $flag ), true );
	if ( ! is_array( $data ) || empty( $data['active'] ) || microtime( true ) >= (float) ( $data['until'] ?? 0 ) ) {
		return null;
	}
	return (string) ( $data['message'] ?? __( 'Checkout is temporarily paused.', 'molam-form' ) );
}

/**
 * Register every hook of the plugin.
 */
function molam_form_boot() {
	add_filter( 'cron_schedules', 'molam_form_cron_schedules' );
	add_action( MOLAM_FORM_CRON_HOOK, 'molam_form_cron_run' );
	// After every plugin is loaded, so the health check sees the gateway.
	add_action( 'plugins_loaded', 'molam_form_health_endpoint', PHP_INT_MAX );
	add_action( 'init', 'molam_form_recover_on_page_load', 1 );
	add_action( 'woocommerce_before_checkout_form', 'molam_form_checkout_notice' );
	Molam_Form_Admin::boot();
}

/**
 * Every ten minutes.
 *
 * @param array $schedules Schedules.
 * @return array
 */
function molam_form_cron_schedules( $schedules ) {
	$schedules['molam_form_ten_minutes'] = array(
		'interval' => 600,
		'display'  => __( 'Every ten minutes (Molam Form)', 'molam-form' ),
	);
	return $schedules;
}

/**
 * Schedule the upgrade check on activation.
 */
function molam_form_activate() {
	add_filter( 'cron_schedules', 'molam_form_cron_schedules' );
	if ( ! wp_next_scheduled( MOLAM_FORM_CRON_HOOK ) ) {
		wp_schedule_event( time() + 60, 'molam_form_ten_minutes', MOLAM_FORM_CRON_HOOK );
	}
}

/**
 * Stop the schedule on deactivation (state and settings stay until uninstall).
 */
function molam_form_deactivate() {
	wp_clear_scheduled_hook( MOLAM_FORM_CRON_HOOK );
}

/**
 * The WP-cron job: one upgrade run, then the payment health report, then the clean-up
 * (outbox answers older than 7 days, backup archives past their retention); each takes the
 * run lock, so runs never overlap.
 *
 * @return array
 */
function molam_form_cron_run() {
	$result = Molam_Form_Upgrade::run();
	update_option( 'molam_form_last_run', array_merge( $result, array( 'at' => time() ) ), false );
	Molam_Form_Payment_Health::maybe_report(); // Hourly: only once a new hour is complete.
	Molam_Form_Housekeeping::run();
	return $result;
}

/**
 * `?molam-health=1`: the smoke test's target. Not blocked by the maintenance flag (the smoke
 * test runs while checkout is paused); 200 when healthy, 503 otherwise; JSON, no page.
 */
function molam_form_health_endpoint() {
	if ( ! isset( $_GET['molam-health'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification
		return;
	}
	nocache_headers();
	$flush = isset( $_GET['molam-flush'] ) ? (string) wp_unslash( $_GET['molam-flush'] ) : ''; // phpcs:ignore WordPress.Security
	if ( '' !== $flush ) {
		$token = (string) get_option( 'molam_form_flush_token', '' );
		if ( '' === $token || ! hash_equals( $token, $flush ) ) {
			wp_send_json( array( 'ok' => false, 'error' => 'invalid flush token' ), 403 );
		}
		wp_send_json( array( 'ok' => true, 'flushed' => Molam_Form_Upgrade::flush_code_cache() ) );
	}
	$report = Molam_Form_Upgrade::health_report();
	wp_send_json( $report, $report['ok'] ? 200 : 503 );
}

/**
 * A crash left a journal and no run holds the lock: recover now, on this page load.
 */
function molam_form_recover_on_page_load() {
	if ( isset( $_GET['molam-health'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification
		return;
	}
	Molam_Form_Upgrade::recover_if_needed();
}

/**
 * Tell the shopper why checkout is paused (WooCommerce hook).
 */
function molam_form_checkout_notice() {
	$msg = molam_form_in_maintenance();
	if ( $msg && function_exists( 'wc_print_notice' ) ) {
		wc_print_notice( esc_html( $msg ), 'notice' );
	}
}
