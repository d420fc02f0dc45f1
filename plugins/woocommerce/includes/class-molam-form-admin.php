<?php
/**
 * wp-admin: the settings page and the notice after a rollback.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * Settings → Molam Form, for users who can `manage_options`.
 */
class Molam_Form_Admin {

	/**
	 * Hooks.
	 */
	public static function boot() {
		add_action( 'admin_init', array( __CLASS__, 'register' ) );
		add_action( 'admin_menu', array( __CLASS__, 'menu' ) );
		add_action( 'admin_notices', array( __CLASS__, 'rollback_notice' ) );
		add_action( 'admin_post_molam_form_dismiss', array( __CLASS__, 'dismiss' ) );
	}

	/**
	 * The settings option, validated by Molam_Form_Settings::sanitize.
	 */
	public static function register() {
		register_setting(
			'molam_form',
			Molam_Form_Settings::OPTION,
			array(
				'type'              => 'array',
				'sanitize_callback' => array( 'Molam_Form_Settings', 'sanitize' ),
				'show_in_rest'      => false,
			)
		);
	}

	/**
	 * Menu entry.
	 */
	public static function menu() {
		add_options_page( __( 'Molam Form', 'molam-form' ), __( 'Molam Form', 'molam-form' ), 'manage_options', 'molam-form', array( __CLASS__, 'render' ) );
	}

	/**
	 * The settings page. The token field is always empty: a stored token is never sent back.
	 */
	public static function render() {
		if ( ! current_user_can( 'manage_options' ) ) {
			wp_die( esc_html__( 'You are not allowed to manage these settings.', 'molam-form' ), 403 );
		}
		$s      = Molam_Form_Settings::all();
		$name   = Molam_Form_Settings::OPTION;
		$fields = array(
			'api_url'       => array( __( 'Control plane URL', 'molam-form' ), 'url', __( 'Base of the REST API, e.g. https://ops.molam.example/api/plugins/ (https required).', 'molam-form' ) ),
			'merchant_id'   => array( __( 'Merchant id', 'molam-form' ), 'text', __( 'Your merchant UUID.', 'molam-form' ) ),
			'public_key'    => array( __( 'Release public key', 'molam-form' ), 'textarea', __( 'Ed25519, base64 of 32 bytes or PEM. Unsigned or badly signed releases are refused.', 'molam-form' ) ),
			'smoke_url'     => array( __( 'Smoke-test URL', 'molam-form' ), 'url', __( 'Empty: this site\'s /?molam-health=1. Must answer 2xx; a 403, a redirect or a refused connection fails the upgrade.', 'molam-form' ) ),
			'plugin_name'   => array( __( 'Plugin name (rollouts)', 'molam-form' ), 'text', __( 'The name the control plane\'s rollouts use.', 'molam-form' ) ),
			'plugin_slug'   => array( __( 'Plugin folder', 'molam-form' ), 'text', __( 'Folder under wp-content/plugins that is upgraded.', 'molam-form' ) ),
			'tables'        => array( __( 'Plugin tables', 'molam-form' ), 'text', __( 'Comma-separated. Migrations may touch these tables only.', 'molam-form' ) ),
			'country'       => array( __( 'Country', 'molam-form' ), 'text', __( 'ISO 3166 alpha-2, for geo rollouts (optional).', 'molam-form' ) ),
			'tier'          => array( __( 'Tier', 'molam-form' ), 'text', __( 'For tier rollouts (optional).', 'molam-form' ) ),
		);
		echo '<div class="wrap"><h1>' . esc_html__( 'Molam Form — safe upgrades', 'molam-form' ) . '</h1>';
		settings_errors( $name );
		echo '<form method="post" action="options.php">';
		settings_fields( 'molam_form' );
		echo '<table class="form-table" role="presentation">';
		foreach ( $fields as $key => list( $label, $type, $help ) ) {
			if ( 'public_key' === $key ) {
				self::row_token( $s );
			}
			$id = "molam-form-$key";
			echo '<tr><th scope="row"><label for="' . esc_attr( $id ) . '">' . esc_html( $label ) . '</label></th><td>';
			if ( 'textarea' === $type ) {
				echo '<textarea class="large-text code" rows="3" id="' . esc_attr( $id ) . '" name="' . esc_attr( "{$name}[$key]" ) . '">' . esc_textarea( (string) $s[ $key ] ) . '</textarea>';
			} else {
				echo '<input class="regular-text" type="' . esc_attr( $type ) . '" id="' . esc_attr( $id ) . '" name="' . esc_attr( "{$name}[$key]" ) . '" value="' . esc_attr( (string) $s[ $key ] ) . '">';
			}
			echo '<p class="description">' . esc_html( $help ) . '</p></td></tr>';
		}
		echo '</table>';
		submit_button();
		echo '</form>';
		self::status_box();
		echo '</div>';
	}

	/**
	 * The token row: a password field that is always empty.
	 *
	 * @param array $s Settings.
	 */
	private static function row_token( $s ) {
		$name = Molam_Form_Settings::OPTION;
		$set  = '' !== (string) $s['token'];
		echo '<tr><th scope="row"><label for="molam-form-token">' . esc_html__( 'API token', 'molam-form' ) . '</label></th><td>';
		echo '<input class="regular-text" type="password" autocomplete="new-password" id="molam-form-token" name="' . esc_attr( "{$name}[token]" ) . '" value="" placeholder="' . esc_attr( $set ? __( 'A token is stored — leave empty to keep it', 'molam-form' ) : __( 'Paste the plugin credential', 'molam-form' ) ) . '">';
		if ( $set ) {
			echo ' <label><input type="checkbox" name="' . esc_attr( "{$name}[forget_token]" ) . '" value="1"> ' . esc_html__( 'Forget the stored token', 'molam-form' ) . '</label>';
		}
		echo '<p class="description">' . esc_html__( 'The plugin credential created with create_api_client --role plugin. Stored, never shown again.', 'molam-form' ) . '</p></td></tr>';
	}

	/**
	 * Installed version, last run, queued reports.
	 */
	private static function status_box() {
		$last = get_option( 'molam_form_last_run' );
		echo '<h2>' . esc_html__( 'Status', 'molam-form' ) . '</h2><table class="widefat striped" style="max-width:60em"><tbody>';
		$rows = array(
			__( 'Installed version', 'molam-form' ) => (string) Molam_Form_Upgrade::installed_version(),
			__( 'Checkout', 'molam-form' )          => molam_form_in_maintenance() ? __( 'paused (maintenance)', 'molam-form' ) : __( 'open', 'molam-form' ),
			__( 'Next check', 'molam-form' )        => wp_next_scheduled( MOLAM_FORM_CRON_HOOK ) ? gmdate( 'Y-m-d H:i:s \U\T\C', wp_next_scheduled( MOLAM_FORM_CRON_HOOK ) ) : __( 'not scheduled', 'molam-form' ),
			__( 'Last run', 'molam-form' )          => is_array( $last ) ? $last['status'] . ' — ' . ( $last['reason'] ?? $last['error'] ?? '' ) : __( 'never', 'molam-form' ),
			__( 'Reports waiting', 'molam-form' )   => (string) count( Molam_Form_Outbox::pending() ),
		);
		foreach ( $rows as $label => $value ) {
			echo '<tr><th style="width:14em">' . esc_html( $label ) . '</th><td>' . esc_html( $value ) . '</td></tr>';
		}
		echo '</tbody></table>';
	}

	/**
	 * After a rollback: a notice with the reason, until dismissed.
	 */
	public static function rollback_notice() {
		$last = get_option( 'molam_form_last_rollback' );
		if ( ! is_array( $last ) || ! current_user_can( 'manage_options' ) ) {
			return;
		}
		$class = $last['success'] ? 'notice-warning' : 'notice-error';
		$text  = $last['success']
			/* translators: 1: failed version, 2: restored version, 3: reason */
			? sprintf( __( 'Molam Form rolled the payment plugin back from %1$s to %2$s. Reason: %3$s', 'molam-form' ), $last['from'], $last['to'], $last['reason'] )
			/* translators: 1: failed version, 2: target version, 3: error */
			: sprintf( __( 'Molam Form could not roll back from %1$s to %2$s; checkout stays paused. Error: %3$s', 'molam-form' ), $last['from'], $last['to'], (string) $last['error'] );
		$url = wp_nonce_url( admin_url( 'admin-post.php?action=molam_form_dismiss' ), 'molam_form_dismiss' );
		echo '<div class="notice ' . esc_attr( $class ) . '"><p>' . esc_html( $text ) . ' <a href="' . esc_url( $url ) . '">' . esc_html__( 'Dismiss', 'molam-form' ) . '</a></p></div>';
	}

	/**
	 * Dismiss the rollback notice (capability + nonce).
	 */
	public static function dismiss() {
		if ( ! current_user_can( 'manage_options' ) || ! check_admin_referer( 'molam_form_dismiss' ) ) {
			wp_die( esc_html__( 'Not allowed.', 'molam-form' ), 403 );
		}
		delete_option( 'molam_form_last_rollback' );
		wp_safe_redirect( wp_get_referer() ? wp_get_referer() : admin_url() );
		exit;
	}
}
