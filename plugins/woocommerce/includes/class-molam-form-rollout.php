<?php
/**
 * The rollout decision: is there an upgrade for this merchant?
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * The seed's `Molam_Form_Rollout` (115ter).
 */
class Molam_Form_Rollout {

	/**
	 * Ask the control plane (`GET rollouts/<plugin>/should-upgrade`) with the merchant's token.
	 * A control plane that is down, or refuses the credential, means "don't upgrade": the answer
	 * says why in `reason`, never an error page. Extra keys: `release` (download URL, SHA-256,
	 * signature of the selected version), `bucket`, and `error_status` when the call failed.
	 *
	 * @param string $merchant_id     Merchant UUID.
	 * @param string $plugin          Plugin name the rollouts speak of (e.g. `woocommerce`).
	 * @param string $current_version Installed version.
	 * @return array{should_upgrade:bool, reason:string, rollout_id:mixed, rollout_percentage:mixed, rollout_strategy:mixed, version:mixed}
	 */
	public static function should_upgrade( $merchant_id, $plugin, $current_version ) {
		$no = array(
			'should_upgrade'     => false,
			'reason'             => '',
			'rollout_id'         => null,
			'rollout_percentage' => null,
			'rollout_strategy'   => null,
			'version'            => null,
			'release'            => null,
		);
		try {
			$answer = Molam_Form_Http::request(
				'GET',
				'rollouts/' . rawurlencode( $plugin ) . '/should-upgrade',
				null,
				array(
					'merchant_id'     => $merchant_id,
					'current_version' => $current_version,
					'country'         => Molam_Form_Settings::get( 'country' ),
					'tier'            => Molam_Form_Settings::get( 'tier' ),
				)
			);
		} catch ( Molam_Form_Http_Error $e ) {
			$no['error_status'] = $e->status;
			if ( in_array( $e->status, array( 401, 403 ), true ) ) {
				$no['reason'] = 'The control plane refused this site\'s credential: ' . $e->getMessage();
			} else {
				$no['reason'] = 'Control plane ' . ( null === $e->status ? 'unreachable' : 'unavailable' ) . ', nothing changed: ' . $e->getMessage();
			}
			return $no;
		}
		return array(
			'should_upgrade'     => ! empty( $answer['should_upgrade'] ),
			'reason'             => (string) ( $answer['reason'] ?? '' ),
			'rollout_id'         => $answer['rollout_id'] ?? null,
			'rollout_percentage' => $answer['rollout_percentage'] ?? null,
			'rollout_strategy'   => $answer['rollout_strategy'] ?? null,
			'version'            => $answer['version'] ?? null,
			'release'            => is_array( $answer['release'] ?? null ) ? $answer['release'] : null,
			'bucket'             => $answer['bucket'] ?? null,
		);
	}
}
