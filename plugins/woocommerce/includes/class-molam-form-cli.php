<?php
/**
 * `wp molam-form …` (WP-CLI).
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * Safe upgrades of the payment plugin from the command line.
 */
class Molam_Form_CLI {

	/**
	 * Recover, perform pending operator-forced rollbacks, then upgrade when selected.
	 *
	 * ## OPTIONS
	 *
	 * [--force]
	 * : Upgrade even when the rollout does not select this merchant.
	 *
	 * @param array $args       Positional.
	 * @param array $assoc_args Flags.
	 */
	public function upgrade( $args, $assoc_args ) {
		$result = Molam_Form_Upgrade::run( ! empty( $assoc_args['force'] ) );
		WP_CLI::line( wp_json_encode( $result, JSON_UNESCAPED_SLASHES ) );
		if ( 'failed' === $result['status'] ) {
			WP_CLI::halt( 'failed' === $result['rollback_status'] ? 2 : 1 );
		}
	}

	/**
	 * Finish or undo an interrupted operation and send queued reports.
	 *
	 * @param array $args       Positional.
	 * @param array $assoc_args Flags.
	 */
	public function recover( $args, $assoc_args ) {
		if ( ! Molam_Form_Store::lock() ) {
			WP_CLI::error( 'another run is in progress' );
		}
		$result = Molam_Form_Upgrade::recover();
		Molam_Form_Outbox::flush();
		Molam_Form_Store::unlock();
		WP_CLI::line( wp_json_encode( $result ? $result : array( 'status' => 'skipped', 'reason' => 'nothing to recover' ), JSON_UNESCAPED_SLASHES ) );
	}

	/**
	 * Installed version, maintenance flag, queued reports.
	 *
	 * @param array $args       Positional.
	 * @param array $assoc_args Flags.
	 */
	public function status( $args, $assoc_args ) {
		WP_CLI::line(
			wp_json_encode(
				array(
					'installed'   => Molam_Form_Upgrade::installed_version(),
					'maintenance' => molam_form_in_maintenance(),
					'in_flight'   => Molam_Form_Store::load( 'journal.json' ),
					'queued'      => count( Molam_Form_Outbox::pending() ),
					'dead'        => count( Molam_Form_Outbox::dead() ),
				),
				JSON_UNESCAPED_SLASHES
			)
		);
	}
}
